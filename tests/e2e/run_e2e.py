#!/usr/bin/env python3
"""Runs the end-to-end tests: every TestCase of every tests/e2e/test_*.py module, against
the real `lakehouse` binary (see harness.py). Prints one closing line
"e2e: N passed, M failed".

    run_e2e.py --bin build-san/lakehouse --mkparquet build-san/lh_mkparquet [-k PATTERN]
"""
import argparse
import glob
import importlib
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--mkparquet", required=True)
    ap.add_argument("-k", dest="pattern", default=None)
    args = ap.parse_args()
    harness.BIN = os.path.abspath(args.bin)
    harness.MKPARQUET = os.path.abspath(args.mkparquet)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = [f"*{args.pattern}*"]
    suite = unittest.TestSuite()
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        mod = importlib.import_module(os.path.basename(path)[:-3])
        for name in dir(mod):
            cls = getattr(mod, name)
            if (isinstance(cls, type) and issubclass(cls, unittest.TestCase)
                    and cls.__module__ == mod.__name__):
                suite.addTests(loader.loadTestsFromTestCase(cls))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    # A class whose setUpClass fails counts as one failure and runs no test; subtests that
    # fail count one each: passed never goes below zero.
    failed = len(result.failures) + len(result.errors)
    print(f"e2e: {max(0, result.testsRun - failed)} passed, {failed} failed")
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
