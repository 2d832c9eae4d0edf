import sys

from kdcg.cli import main

sys.exit(main())
