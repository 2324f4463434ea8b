"""``python -m mmcourse.casestudy --help``: see :mod:`mmcourse.casestudy.run`."""

import sys

from mmcourse.casestudy.run import main

if __name__ == "__main__":
    sys.exit(main())
