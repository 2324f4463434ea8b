"""Rebuild the bundled MNIST subset in data/mnist-subset/ from the raw MNIST files.

Usage:  python scripts/build_mnist_subset.py [--root FOLDER_WITH_MNIST_RAW] [--out FOLDER]

The result is byte for byte the committed subset (tests/test_subset.py checks this).
"""

import argparse

from mmcourse.data import mnist, subset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="folder holding MNIST/raw/ (default: MMCOURSE_DATA, data/)")
    parser.add_argument("--out", default=str(mnist.SUBSET_DIR), help="where to write the subset")
    args = parser.parse_args()
    sums = subset.build_subset(args.out, root=args.root)
    for name, sha in sorted(sums.items()):
        print(f"{sha}  {name}")


if __name__ == "__main__":
    main()
