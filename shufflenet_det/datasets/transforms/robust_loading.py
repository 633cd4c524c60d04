"""Image loading that fails loudly on broken files and always yields BGR."""
import logging
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmdet.registry import TRANSFORMS
from mmengine import fileio
from mmengine.logging import print_log

_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
_JPEG_SOS = 0xDA
# Markers without a length field (TEM, RSTn, SOI, EOI).
_STANDALONE = {0x01, *range(0xD0, 0xDA)}
SIZE_MISMATCH_ACTIONS = ('fix', 'error')


def jpeg_is_truncated(data: bytes) -> bool:
    """Whether a JPEG byte string ends before its End-Of-Image marker.

    OpenCV 4.x decodes a truncated JPEG with only a libjpeg warning on
    stderr and grey rows where the data is missing, so a cut-off download
    silently trains on a wrong image (OpenCV 5 returns None instead; the
    ``pillow`` backend raises without naming the file).

    The check follows the marker structure to the EOI marker: segments are
    skipped by their length field (so EXIF thumbnails, which carry their own
    EOI inside APP1, are not mistaken for the end), and inside entropy-coded
    scan data 0xFF bytes are stuffed (FF 00), restart markers or fill, so the
    next other FF xx is a real marker (a progressive JPEG's next DHT/SOS, or
    EOI). Bytes after EOI are allowed (some cameras append data). Costs one
    ``bytes.find`` per 0xFF byte of scan data.

    Args:
        data (bytes): File content starting with the JPEG SOI marker.

    Returns:
        bool: True if the stream is cut off (or unparseable) before EOI.
    """
    pos, size, in_scan = 2, len(data), False
    while True:
        if in_scan:
            pos = data.find(b'\xff', pos)
            if pos < 0 or pos + 1 >= size:
                return True
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte before a marker
                pos += 1
                continue
            if marker == 0x00 or 0xD0 <= marker <= 0xD7:  # stuffing, RSTn
                pos += 2
                continue
            in_scan = False
        if pos + 2 > size or data[pos] != 0xFF:
            return True  # cut off, or lost sync in a corrupt header
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == _JPEG_EOI[1]:
            return False
        elif marker in _STANDALONE:
            pos += 2
        elif pos + 4 > size:
            return True
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
            in_scan = marker == _JPEG_SOS


@TRANSFORMS.register_module()
class RobustLoadImageFromFile(LoadImageFromFile):
    """:class:`mmcv.transforms.LoadImageFromFile` with clear failures.

    Differences from mmcv's transform, same arguments:

    - a missing file raises ``FileNotFoundError`` and an empty, undecodable
      or truncated image raises ``ValueError``; both name the path, the image
      id and the reason (mmcv raises ``AssertionError: failed to load image``
      without id or reason, and with OpenCV 4.x loads a truncated JPEG
      grey-filled, without error: see :func:`jpeg_is_truncated`);
    - the image is always (H, W, 3) BGR uint8 (or float32 with
      ``to_float32``): grayscale is replicated, an alpha channel is dropped,
      even with ``color_type='unchanged'`` (only a ``'grayscale'``
      ``color_type`` keeps one channel, as asked);
    - with ``ignore_empty=True`` a broken image is skipped (the dataset draws
      another one) and a warning names it;
    - the decoded image is checked against what the annotation file states
      about it (``width`` and ``height`` of its ``images`` entry, which
      mmdet's CocoDataset passes on; the ``file_name`` is checked by loading
      it; ``license``, ``coco_url``, ``flickr_url`` and ``date_captured``
      say nothing about the pixels). On a size mismatch the annotation's
      boxes (training) and the ground truth the predictions are scored
      against (evaluation) would be in other coordinates than the image, so
      by default (``size_mismatch='fix'``) the image is brought to the
      annotated size with a warning that names the file, both sizes and what
      was done (once per file and process): an image whose decoder applied
      its EXIF orientation, where the annotation describes the stored pixels
      (COCO's convention), is decoded again without it; any other image is
      resized to the annotated width x height (the warning says when the
      aspect ratio differs too, a sign of a different picture).
      ``size_mismatch='error'`` raises a ``ValueError`` with the same facts
      instead (skipped with a warning under ``ignore_empty``).

    Args:
        size_mismatch (str): ``'fix'`` (default) or ``'error'``, see above.
        *args, **kwargs: As :class:`mmcv.transforms.LoadImageFromFile`.

    Required keys: ``img_path`` (and ``img_id`` when present, for messages;
    ``width`` and ``height`` when present, for the size check).
    Added keys: ``img``, ``img_shape``, ``ori_shape``.
    """

    def __init__(self, *args, size_mismatch: str = 'fix', **kwargs):
        super().__init__(*args, **kwargs)
        if size_mismatch not in SIZE_MISMATCH_ACTIONS:
            raise ValueError(f'RobustLoadImageFromFile: size_mismatch must be '
                             f'one of {SIZE_MISMATCH_ACTIONS}, got '
                             f'{size_mismatch!r}')
        self.size_mismatch = size_mismatch
        self._warned = set()

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``.

        Args:
            results (dict): Result dict from the dataset.

        Returns:
            dict | None: ``results`` with the image, or None if the image is
            broken and ``ignore_empty`` is set.
        """
        filename = results['img_path']
        culprit = f'{filename} (img_id={results.get("img_id", "?")})'
        try:
            img, img_bytes = self._load(filename, culprit)
            img = self._match_annotation(img, img_bytes, results, culprit)
        except (FileNotFoundError, ValueError) as e:
            if self.ignore_empty:
                print_log(f'skipping image: {e}', logger='current',
                          level=logging.WARNING)
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _load(self, filename: str, culprit: str):
        """Returns: tuple[np.ndarray, bytes]: The image and the file."""
        try:
            if self.file_client_args is not None:
                img_bytes = fileio.FileClient.infer_client(
                    self.file_client_args, filename).get(filename)
            else:
                img_bytes = fileio.get(filename,
                                       backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'image file not found: {culprit}') from e
        if not img_bytes:
            raise ValueError(f'empty image file: {culprit}')
        if img_bytes[:2] == _JPEG_SOI and jpeg_is_truncated(img_bytes):
            raise ValueError(f'truncated JPEG (no end-of-image marker after '
                             f'the scan data, {len(img_bytes)} bytes): '
                             f'{culprit}')
        try:
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type,
                                   backend=self.imdecode_backend)
        except Exception as e:  # decoders raise many types on garbage
            raise ValueError(f'cannot decode image ({type(e).__name__}: '
                             f'{e}): {culprit}') from e
        if img is None or img.size == 0:
            raise ValueError(f'cannot decode image (corrupt or not an '
                             f'image): {culprit}')
        return self._channels(img), img_bytes

    def _channels(self, img: np.ndarray) -> np.ndarray:
        if 'grayscale' in self.color_type:
            return img  # one channel was asked for explicitly
        return _to_bgr(img)

    def _match_annotation(self, img: np.ndarray, img_bytes: bytes,
                          results: dict, culprit: str) -> np.ndarray:
        """Bring ``img`` to the annotated ``height`` x ``width`` or raise."""
        want = results.get('height'), results.get('width')
        if None in want or tuple(img.shape[:2]) == want:
            return img
        height, width = img.shape[:2]
        facts = (f'image size differs from the annotation file: {culprit} '
                 f'decodes to {width}x{height} (width x height), its '
                 f'"images" entry says {want[1]}x{want[0]}')
        if self.size_mismatch == 'error':
            raise ValueError(f'{facts}; its boxes would not fit the image '
                             '(size_mismatch=\'error\')')
        action = None
        if (height, width) == want[::-1] and \
                not self.color_type.endswith('ignore_orientation'):
            flag = ('grayscale' if 'grayscale' in self.color_type else
                    'color') + '_ignore_orientation'
            stored = mmcv.imfrombytes(img_bytes, flag=flag,
                                      backend=self.imdecode_backend)
            if stored is not None and stored.shape[:2] == want:
                img = self._channels(stored)
                action = ('the decoder had rotated it by its EXIF '
                          'orientation; loaded without the rotation, as '
                          'annotated')
        if action is None:
            img = mmcv.imresize(img, (want[1], want[0]))
            action = (f'resized to {want[1]}x{want[0]} so that boxes and '
                      'predictions are in the annotation\'s coordinates')
            ratio = (width / height) / (want[1] / want[0])
            if abs(ratio - 1) > 0.01:
                action += (f'; the aspect ratio differs by '
                           f'{abs(ratio - 1):.0%}: check that this is the '
                           'annotated picture')
        path = results['img_path']
        if path not in self._warned:
            self._warned.add(path)
            print_log(f'{facts}: {action}.', logger='current',
                      level=logging.WARNING)
        return img


def _to_bgr(img: np.ndarray) -> np.ndarray:
    """Make an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image (H, W, 3)."""
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(img.reshape(img.shape[:2])),
                            cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img
