import sys

from pawhub.cli import main

sys.exit(main())
