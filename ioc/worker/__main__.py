"""`python -m ioc.worker <command fd> <report fd>`: started by the IOC process."""

import sys

from .process import main

sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
