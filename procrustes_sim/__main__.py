import sys

from procrustes_sim.cli import main

sys.exit(main())
