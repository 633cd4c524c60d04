"""Write Table 7's metafile.yml and docs/model_zoo.md from the configs.

Counts every backbone of configs/light_head_rcnn/ with
shufflenet_det.analysis.complexity (about a minute on 2 CPU cores) and writes both
files; tests/test_metafile.py checks the committed copies against the code.

    python tools/gen_metafile.py            # (re)write both files
    python tools/gen_metafile.py --check    # exit 1 if either is stale
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Let a fresh clone run without `pip install -e .`.
sys.path.insert(0, ROOT)

from shufflenet_det.analysis.model_zoo import (  # noqa: E402
    METAFILE, MODEL_ZOO_MD, format_metafile, format_model_zoo, table7_rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 if a file is stale')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = table7_rows(ROOT)
    stale = []
    for rel, text in ((METAFILE, format_metafile(rows)),
                      (MODEL_ZOO_MD, format_model_zoo(rows))):
        path = osp.join(ROOT, rel)
        old = open(path).read() if osp.isfile(path) else None
        if old == text:
            print(f'{rel}: up to date')
        elif args.check:
            stale.append(rel)
            print(f'{rel}: stale, run python tools/gen_metafile.py')
        else:
            with open(path, 'w') as f:
                f.write(text)
            print(f'{rel}: written ({len(rows)} configs)')
    return 1 if stale else 0


if __name__ == '__main__':
    sys.exit(main())
