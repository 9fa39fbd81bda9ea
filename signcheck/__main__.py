import sys

from signcheck.cli import main

sys.exit(main())
