"""The classic semi-supervised MNIST table (`strata table`, finetune.table).

    python scripts/mnist_table.py                          # 100/600/1000/3000/all labels, seeds 1 to 5
    python scripts/mnist_table.py seeds=[1,2,3] budgets=[100,1000]
"""
from finetune.table import main

if __name__ == "__main__":
    main()
