"""The main job: pretrain once, then fine-tune over label budgets x seeds x modes and compare with scratch
(`strata compare`, finetune.commands.compare).

    python scripts/compare.py                                   # digits, the defaults of conf/compare.yaml
    python scripts/compare.py data=mnist data.root=../shared/data/mnist budgets=[100,1000] seeds=[0]
    python scripts/compare.py gather=multirun/finetune/<date>     # tabulate a sweep of `python -m finetune -m` jobs
"""
from finetune.commands import compare as main

if __name__ == "__main__":
    main()
