"""The mmcv._ext stand-in (tools/mmcv_ext_standin) installed by tools/install.sh.

Its ops are checked against slow independent references here, and against
mmcv's compiled ops in the --full-mmcv CI lane (``full_mmcv`` marker).
"""
import importlib.metadata
import importlib.util
import subprocess
import sys

import pytest
import torch

import shufflenet_det_mmcv_ext
from tests.conftest import COCO_MINI, COCO_MINI_SKIP, REPO


def _load_stand_in():
    """The stand-in module itself, whatever ``mmcv._ext`` resolves to here."""
    spec = importlib.util.spec_from_file_location(
        'stand_in_ext', shufflenet_det_mmcv_ext._EXT_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXT = _load_stand_in()


def _compiled_ext():
    import mmcv._ext as ext
    if shufflenet_det_mmcv_ext.is_stand_in(ext):
        pytest.skip('needs mmcv with compiled ops (the `bash tools/install.sh --full-mmcv` CI lane)')
    return ext


def random_boxes(n, seed=0, scale=100.):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * scale
    wh = torch.rand(n, 2, generator=gen) * scale / 3 + 1
    # Integer coordinates make exact IoU ties at the threshold likely.
    boxes = torch.cat([xy, xy + wh], 1).round()
    return boxes, torch.rand(n, generator=gen)


def reference_nms(boxes, scores, thr, offset):
    """Greedy NMS in Python floats, mmcv's rule: suppress when IoU > thr."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    b = boxes.tolist()
    area = [(x2 - x1 + offset) * (y2 - y1 + offset) for x1, y1, x2, y2 in b]
    keep = []
    for i in order:
        ok = True
        for j in keep:
            w = min(b[i][2], b[j][2]) - max(b[i][0], b[j][0]) + offset
            h = min(b[i][3], b[j][3]) - max(b[i][1], b[j][1]) + offset
            inter = max(w, 0) * max(h, 0)
            if inter / (area[i] + area[j] - inter) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('thr', [0.3, 0.5, 0.7])
def test_nms_equals_reference(offset, thr):
    boxes, scores = random_boxes(300, seed=int(thr * 10) + offset)
    keep = EXT.nms(boxes, scores, iou_threshold=thr, offset=offset)
    assert keep.tolist() == reference_nms(boxes, scores, thr, offset)


def reference_roi_align(feat, roi, out_hw, scale, ratio, aligned):
    """Average RoIAlign of one RoI, written out sample by sample."""
    _, c, h, w = feat.shape
    off = 0.5 if aligned else 0.
    x1, y1, x2, y2 = (float(v) * scale - off for v in roi[1:])
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.), max(rh, 1.)
    ph, pw = out_hw
    bh, bw = rh / ph, rw / pw
    gh = ratio if ratio > 0 else int(torch.ceil(torch.tensor(rh / ph)))
    gw = ratio if ratio > 0 else int(torch.ceil(torch.tensor(rw / pw)))
    f = feat[int(roi[0])]
    out = torch.zeros(c, ph, pw, dtype=torch.float64)
    for i in range(ph):
        for j in range(pw):
            for iy in range(gh):
                for ix in range(gw):
                    y = y1 + i * bh + (iy + .5) * bh / gh
                    x = x1 + j * bw + (ix + .5) * bw / gw
                    out[:, i, j] += bilinear(f, y, x, h, w)
            out[:, i, j] /= gh * gw
    return out


def bilinear(f, y, x, h, w):
    if y < -1 or y > h or x < -1 or x > w:
        return torch.zeros(f.shape[0], dtype=torch.float64)
    y, x = max(y, 0.), max(x, 0.)
    y0, x0 = min(int(y), h - 1), min(int(x), w - 1)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    y = float(y0) if y0 >= h - 1 else y
    x = float(x0) if x0 >= w - 1 else x
    ly, lx = y - y0, x - x0
    f = f.double()
    return ((1 - ly) * (1 - lx) * f[:, y0, x0] + (1 - ly) * lx * f[:, y0, x1]
            + ly * (1 - lx) * f[:, y1, x0] + ly * lx * f[:, y1, x1])


ROIS = torch.tensor([[0, 3.2, 4.7, 40.1, 30.3], [1, 0., 0., 63., 47.], [1, 50.5, 2., 70., 9.5],
                     [0, 10., 10., 10.4, 10.6]])


@pytest.mark.parametrize('aligned', [False, True])
@pytest.mark.parametrize('ratio', [0, 2])
def test_roi_align_forward_equals_reference(aligned, ratio):
    feat = torch.randn(2, 3, 12, 16)
    out = feat.new_zeros(len(ROIS), 3, 3, 4)
    EXT.roi_align_forward(feat, ROIS, out, None, None, aligned_height=3, aligned_width=4,
                          spatial_scale=0.25, sampling_ratio=ratio, pool_mode=1, aligned=aligned)
    for k, roi in enumerate(ROIS):
        ref = reference_roi_align(feat, roi, (3, 4), 0.25, ratio, aligned)
        torch.testing.assert_close(out[k].double(), ref, atol=1e-5, rtol=1e-5)


def test_roi_align_backward_is_the_gradient_of_forward():
    from mmcv.ops import RoIAlign
    if not shufflenet_det_mmcv_ext.is_stand_in(sys.modules.get('mmcv._ext')):
        pytest.skip('mmcv has compiled ops here; this checks the stand-in through mmcv.ops')
    feat = torch.randn(2, 3, 12, 16, dtype=torch.float64, requires_grad=True)
    layer = RoIAlign((3, 4), spatial_scale=0.25, sampling_ratio=2, aligned=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, ROIS.double()), (feat,))


def test_other_ops_name_themselves_and_full_mmcv():
    with pytest.raises(EXT.MissingCompiledOpError, match=r'`softnms`.*--full-mmcv'):
        EXT.softnms(torch.zeros(1, 4), torch.zeros(1))
    with pytest.raises(EXT.MissingCompiledOpError, match=r"pool_mode='max'.*--full-mmcv"):
        EXT.roi_align_forward(torch.zeros(1, 1, 4, 4), ROIS[:1], torch.zeros(1, 1, 2, 2),
                              None, None, 2, 2, 1., 0, 0, True)
    with pytest.raises(AttributeError):
        EXT.__wrapped__  # dunder lookups must not pretend to exist


def test_found_without_importing_shufflenet_det():
    """mmdet's own entry points find the stand-in: no import of ours needed."""
    code = ('import sys, mmcv.ops, mmdet.apis; from mmdet.apis import DetInferencer; '
            'import mmcv._ext as e; assert "shufflenet_det" not in sys.modules, "imported"; '
            'print(e.__file__)')
    out = subprocess.run([sys.executable, '-c', code], cwd='/', capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def test_uninstall_removes_everything():
    """pip removes exactly the files the wheel's RECORD lists: the .pth is one."""
    files = {str(f) for f in importlib.metadata.files('shufflenet-det-mmcv-ext')}
    assert 'shufflenet_det_mmcv_ext.pth' in files
    assert 'shufflenet_det_mmcv_ext/_ext.py' in files
    pth = [f for f in importlib.metadata.files('shufflenet-det-mmcv-ext')
           if f.name.endswith('.pth')][0]
    assert pth.read_text().strip() == (
        'import shufflenet_det_mmcv_ext; shufflenet_det_mmcv_ext.install()')


@pytest.mark.slow
@COCO_MINI_SKIP
def test_stock_mmdet_faster_rcnn_runs_inference():
    """A stock mmdet config (nms and roi_align through mmcv.ops) under mmdet's API."""
    image = sorted((COCO_MINI / 'val2017').glob('*.jpg'))[0]
    code = f'''
import sys
from mmdet.apis import init_detector, inference_detector
from mmengine.config import Config
import mmdet, os
cfg = Config.fromfile(os.path.join(os.path.dirname(mmdet.__file__),
    '.mim/configs/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'))
cfg.model.backbone.init_cfg = None
cfg.test_dataloader.dataset.pipeline[1].scale = (320, 320)
model = init_detector(cfg, None, device='cpu')
res = inference_detector(model, {str(image)!r})
assert "shufflenet_det" not in sys.modules
print('detections', len(res.pred_instances))
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'detections' in out.stdout


@pytest.mark.full_mmcv
def test_stand_in_equals_compiled_ops():
    ext = _compiled_ext()
    boxes, scores = random_boxes(500, seed=3)
    for offset in (0, 1):
        for thr in (0.3, 0.5, 0.7):
            assert EXT.nms(boxes, scores, thr, offset).tolist() == \
                ext.nms(boxes, scores, iou_threshold=thr, offset=offset).tolist()
    feat = torch.randn(2, 3, 12, 16)
    for aligned in (False, True):
        for ratio in (0, 2):
            ours, theirs = (feat.new_zeros(len(ROIS), 3, 3, 4) for _ in range(2))
            args = dict(aligned_height=3, aligned_width=4, spatial_scale=0.25,
                        sampling_ratio=ratio, pool_mode=1, aligned=aligned)
            EXT.roi_align_forward(feat, ROIS, ours, None, None, **args)
            ay, ax = (feat.new_zeros(len(ROIS), 3, 3, 4) for _ in range(2))
            ext.roi_align_forward(feat, ROIS, theirs, ay, ax, **args)
            torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
