"""``python -m item2vec.cli``: the ``item2vec`` command."""

import sys

from item2vec.cli import main

sys.exit(main())
