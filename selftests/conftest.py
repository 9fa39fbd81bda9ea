"""Selftests: pin the tool cache before any test can move HOME.

pytester (and other tests) point HOME at a temporary directory for isolation; the tool cache
defaults to ~/.cache/signcheck, so a nested pytest would find no tools there and start a
cold build of every pinned tool (tens of minutes). Exporting the resolved cache once, here,
keeps every nested run on the machine's real cache.
"""

import os

from signcheck import places

os.environ.setdefault("SIGNCHECK_CACHE", str(places.cache_root()))
