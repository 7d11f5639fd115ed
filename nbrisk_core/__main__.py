import sys

from nbrisk_core.cli import main

sys.exit(main())
