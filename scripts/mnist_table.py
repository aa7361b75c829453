"""The classic semi-supervised MNIST table (`strata table`, finetune.table).

    python scripts/mnist_table.py                          # 100/600/1000/3000/all labels, 3 seeds
    python scripts/mnist_table.py seeds=[0] budgets=[100,1000]
"""
from finetune.table import main

if __name__ == "__main__":
    main()
