import sys

from bench.l7.run import main

sys.exit(main())
