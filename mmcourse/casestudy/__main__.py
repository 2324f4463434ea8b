"""``python -m mmcourse.casestudy --help``: see :mod:`mmcourse.casestudy.run`."""

import sys

from mmcourse.casestudy.run import main

sys.exit(main())
