import sys

from engramlab.cli import main

sys.exit(main())
