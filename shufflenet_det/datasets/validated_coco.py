"""A COCO dataset that checks its annotation file before training on it."""
import copy
import json
import logging
import math
from collections import Counter
from typing import Callable, Dict, List, Tuple

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

# Keys every entry of each top-level list must carry. 'annotations' may be
# absent in test mode: COCO's test-dev image-info files have none.
REQUIRED_KEYS: Dict[str, Tuple[str, ...]] = {
    'images': ('id', 'file_name', 'width', 'height'),
    'annotations': ('id', 'image_id', 'category_id', 'bbox'),
    'categories': ('id', 'name'),
}

# Why a box was dropped or changed; the report keeps this order.
SKIP_REASONS = ('zero or negative area', 'outside the image',
                'smaller than 1 px after clipping')
CLIPPED = 'clipped to the image'
MAX_EXAMPLES = 3


@DATASETS.register_module()
class ValidatedCocoDataset(CocoDataset):
    """:class:`mmdet.datasets.CocoDataset` that validates its annotation file.

    A broken annotation file fails at construction with a ``ValueError`` that
    names the file, the key or list index, the offending value and the image
    id, instead of a bare ``JSONDecodeError``/``KeyError`` deep inside
    pycocotools or, worse, silently wrong training targets:

    - the file is not JSON, or its top level is not an object;
    - ``images``, ``annotations`` or ``categories`` is missing (in test mode
      only ``annotations`` may be absent, as in COCO test-dev files), or an
      entry lacks one of :data:`REQUIRED_KEYS`;
    - duplicate image or annotation ids, an annotation whose ``image_id`` is
      not an image of the file, or whose ``category_id`` is not one of its
      ``categories``;
    - a ``bbox`` that is not 4 finite numbers.

    Boxes that are merely unusable are handled the way a user training on a
    large crawled data set wants, and counted with one warning per reason
    (see :attr:`box_report`): zero/negative-area boxes and boxes entirely
    outside the image are skipped; boxes partly outside are clipped to the
    image; boxes thinner than 1 px after clipping are skipped (mmdet's own
    rule). Images left without boxes are kept, or dropped by
    ``filter_cfg=dict(filter_empty_gt=True)`` with a warning giving the count.

    Only the training targets are affected: :class:`CocoMetric` reads the
    original file for evaluation.

    Args:
        *args, **kwargs: As :class:`mmdet.datasets.CocoDataset`.

    Attributes:
        box_report (dict[str, int]): Boxes skipped or clipped, per reason.
        num_images_without_boxes (int): Images with no usable box.
        num_filtered_empty (int): Of those, how many ``filter_empty_gt``
            removed.
    """

    def load_data_list(self) -> List[dict]:
        """Validate ``self.ann_file``, then parse it like CocoDataset does.

        Returns:
            list[dict]: One data info per image, see
            :meth:`CocoDataset.parse_data_info`.

        Raises:
            ValueError: If the file is malformed, naming file, key and value.
        """
        with get_local_path(self.ann_file,
                            backend_args=self.backend_args) as local_path:
            data = self._read_json(local_path)
        data = self._validate(data)

        self.coco = self.COCOAPI()
        self.coco.dataset = data
        self.coco.createIndex()
        # mmdet's wrapper aliases these in __init__; rebind to the new index.
        self.coco.img_ann_map = self.coco.imgToAnns
        self.coco.cat_img_map = self.coco.catToImgs

        self.cat_ids = self.coco.get_cat_ids(
            cat_names=self.metainfo['classes'])
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = copy.deepcopy(self.coco.cat_img_map)

        data_list = []
        for img_id in self.coco.get_img_ids():
            raw_img_info = self.coco.load_imgs([img_id])[0]
            raw_img_info['img_id'] = img_id
            raw_ann_info = self.coco.load_anns(
                self.coco.get_ann_ids(img_ids=[img_id]))
            data_list.append(
                self.parse_data_info(
                    dict(raw_ann_info=raw_ann_info,
                         raw_img_info=raw_img_info)))
        del self.coco

        self.num_images_without_boxes = sum(
            1 for info in data_list if not info['instances'])
        return data_list

    def filter_data(self) -> List[dict]:
        """CocoDataset's filtering, reporting images dropped as empty."""
        valid = super().filter_data()
        kept = {info['img_id'] for info in valid}
        dropped = [info['img_id'] for info in self.data_list
                   if info['img_id'] not in kept and not info['instances']]
        self.num_filtered_empty = len(dropped)
        if dropped:
            print_log(
                f'{self.ann_file}: filter_cfg.filter_empty_gt dropped '
                f'{len(dropped)} image(s) without usable boxes (e.g. image '
                f'id {", ".join(map(str, dropped[:MAX_EXAMPLES]))}); set '
                'filter_empty_gt=False to train on them as background.',
                logger='current', level=logging.WARNING)
        return valid

    # ------------------------------------------------------------ internals
    def _read_json(self, path: str) -> dict:
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f'{self.ann_file}: not a valid JSON annotation '
                             f'file ({e})') from e
        if not isinstance(data, dict):
            raise ValueError(f'{self.ann_file}: the top level must be a JSON '
                             f'object with keys {sorted(REQUIRED_KEYS)}, got '
                             f'{type(data).__name__}')
        return data

    def _validate(self, data: dict) -> dict:
        """Check ``data`` in place and return it with boxes cleaned."""
        self._check_structure(data)
        images = self._index_images(data['images'])
        cat_ids = {cat['id'] for cat in data['categories']}
        report, examples = Counter(), {}
        data['annotations'] = self._clean_annotations(
            data['annotations'], images, cat_ids, report, examples)
        self._report_boxes(report, examples)
        return data

    def _check_structure(self, data: dict) -> None:
        """Required top-level keys, lists, and required fields per entry."""
        required = [k for k in REQUIRED_KEYS
                    if not (self.test_mode and k == 'annotations')]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f'{self.ann_file}: missing required key(s) '
                             f'{missing}; the file has {sorted(data)}')
        data.setdefault('annotations', [])
        for key, fields in REQUIRED_KEYS.items():
            if not isinstance(data[key], list):
                raise ValueError(f'{self.ann_file}: "{key}" must be a list, '
                                 f'got {type(data[key]).__name__}')
            required_fields = frozenset(fields)
            for i, entry in enumerate(data[key]):
                if not (isinstance(entry, dict)
                        and entry.keys() >= required_fields):
                    lacking = [f for f in fields
                               if not isinstance(entry, dict)
                               or f not in entry]
                    raise ValueError(f'{self.ann_file}: {key}[{i}] lacks '
                                     f'required key(s) {lacking}: '
                                     f'{_short(entry)}')

    def _index_images(self, entries: list) -> dict:
        """``image id -> entry``; a repeated id is an error."""
        images = {}
        for i, img in enumerate(entries):
            if img['id'] in images:
                raise ValueError(f'{self.ann_file}: images[{i}] repeats '
                                 f'image id {img["id"]!r}')
            images[img['id']] = img
        return images

    def _clean_annotations(self, annotations: list, images: dict, cat_ids: set,
                           report: Counter, examples: Dict[str, List[str]]) -> list:
        """The usable annotations (clipped ones included); counts the rest."""
        ann_ids, kept = set(), []
        for i, ann in enumerate(annotations):
            # Built only for a message: formatting it for each of COCO's
            # 860k annotations would cost seconds.
            def where():
                return (f'{self.ann_file}: annotations[{i}] '
                        f'(id={ann["id"]!r}, image_id={ann["image_id"]!r})')

            if ann['id'] in ann_ids:
                raise ValueError(f'{where()}: duplicate annotation id')
            ann_ids.add(ann['id'])
            img = images.get(ann['image_id'])
            if img is None:
                raise ValueError(f'{where()}: image_id {ann["image_id"]!r} '
                                 'is not in "images"')
            if ann['category_id'] not in cat_ids:
                raise ValueError(
                    f'{where()}: unknown category_id {ann["category_id"]!r}; '
                    f'"categories" has ids {_id_range(cat_ids)}')
            reason = self._clean_box(ann, img, where)
            if reason is None:
                kept.append(ann)
                continue
            report[reason] += 1
            raw = ann.pop('_raw_bbox', ann['bbox'])
            if len(examples.setdefault(reason, [])) < MAX_EXAMPLES:
                examples[reason].append(
                    f'id {ann["id"]} on image {ann["image_id"]}: {raw}')
            if reason == CLIPPED:
                kept.append(ann)
        return kept

    def _report_boxes(self, report: Counter, examples: Dict[str, List[str]]) -> None:
        """One warning per kind of skipped or clipped box; ``box_report``."""
        self.box_report = {r: report[r] for r in (*SKIP_REASONS, CLIPPED)}
        for reason in (*SKIP_REASONS, CLIPPED):
            if report[reason]:
                action = 'clipped' if reason == CLIPPED else 'skipped'
                print_log(
                    f'{self.ann_file}: {action} {report[reason]} box(es) '
                    f'({reason}), e.g. ' + '; '.join(examples[reason]),
                    logger='current', level=logging.WARNING)

    @staticmethod
    def _clean_box(ann: dict, img: dict, where: Callable[[], str]):
        """Clip ``ann['bbox']`` to the image in place.

        Returns:
            str | None: A reason from :data:`SKIP_REASONS` if the box is
            unusable, :data:`CLIPPED` if it was clipped, else None.
        """
        bbox = ann['bbox']
        if (type(bbox) not in (list, tuple) or len(bbox) != 4
                or not all(type(v) in (int, float) and math.isfinite(v)
                           for v in bbox)):
            raise ValueError(f'{where()}: bbox must be 4 finite numbers '
                             f'[x, y, w, h], got {bbox!r}')
        x1, y1, w, h = bbox
        if w <= 0 or h <= 0 or ann.get('area', 1) <= 0:
            return SKIP_REASONS[0]
        x2, y2 = x1 + w, y1 + h
        width, height = img['width'], img['height']
        if x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
            # Inside the image: the common case, nothing to clip.
            return SKIP_REASONS[2] if w < 1 or h < 1 else None
        cx1, cy1 = max(x1, 0), max(y1, 0)
        cx2, cy2 = min(x2, width), min(y2, height)
        if cx2 <= cx1 or cy2 <= cy1:
            return SKIP_REASONS[1]
        if cx2 - cx1 < 1 or cy2 - cy1 < 1:
            return SKIP_REASONS[2]
        ann['_raw_bbox'] = list(bbox)
        ann['bbox'] = [cx1, cy1, cx2 - cx1, cy2 - cy1]
        return CLIPPED


def _short(obj, limit: int = 120) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[:limit] + '...'


def _id_range(ids) -> str:
    ids = sorted(ids, key=str)
    if ids and all(isinstance(i, int) for i in ids):
        return f'{min(ids)}..{max(ids)} ({len(ids)} ids)'
    return _short(ids)
