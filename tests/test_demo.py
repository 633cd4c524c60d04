"""tools/demo.py: detections drawn on the repository's demo image."""
import subprocess
import sys

import numpy as np
import pytest

from .conftest import COCO_MINI, DEPLOY_CHECK_CONFIG, REPO

DEMO_IMAGE = REPO / 'demo/demo.jpg'


def test_demo_image_is_the_coco_val2017_image_its_readme_names():
    source = COCO_MINI / 'val2017/000000007281.jpg'
    if not source.is_file():
        pytest.skip(f'coco-mini not found at {COCO_MINI}')
    assert DEMO_IMAGE.read_bytes() == source.read_bytes()
    assert '000000007281.jpg' in (REPO / 'demo/README.md').read_text()


@pytest.mark.slow
def test_demo_draws_boxes_with_a_trained_checkpoint(deploy_check_checkpoint,
                                                    tmp_path):
    import cv2
    run = subprocess.run(
        [sys.executable, str(REPO / 'tools/demo.py'), str(DEMO_IMAGE),
         str(DEPLOY_CHECK_CONFIG), str(deploy_check_checkpoint), '--out',
         str(tmp_path), '--score-thr', '0.05'],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    line = run.stdout.strip().splitlines()[-1]
    # 150 iterations on 8 images: weak, but it finds things on this image.
    drawn = int(line.split(': ')[1].split()[0])
    assert drawn > 0, line
    assert line.endswith(str(tmp_path / 'demo.jpg'))
    source = cv2.imread(str(DEMO_IMAGE)).astype(int)
    drawn_img = cv2.imread(str(tmp_path / 'demo.jpg')).astype(int)
    assert drawn_img.shape == source.shape
    # Box outlines and labels change pixels far beyond JPEG re-encoding.
    changed = (np.abs(drawn_img - source).max(axis=2) > 100).sum()
    assert changed > 200, changed
    assert 'out of bounds' not in run.stderr
