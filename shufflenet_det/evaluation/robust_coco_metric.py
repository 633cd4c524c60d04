"""CocoMetric that scores a model predicting nothing as 0, not as nothing."""
import tempfile
from collections import OrderedDict
from typing import Dict

from mmdet.datasets.api_wrappers import COCO
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS
from mmengine.logging import MMLogger

# The item lists mmdet's CocoMetric reports when metric_items is None.
DEFAULT_ITEMS = {
    'proposal': ('AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000',
                 'AR_l@1000'),
    'bbox': ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'),
    'segm': ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'),
}
SUPPORTED_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l',
                   'AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000',
                   'AR_l@1000')


@METRICS.register_module()
class RobustCocoMetric(CocoMetric):
    """:class:`mmdet.evaluation.CocoMetric` that survives empty predictions.

    When the model returns no box on any image (typical in the first
    iterations, or with a too-high score threshold), pycocotools' ``loadRes``
    fails and mmdet logs ``ERROR ... results of the whole dataset is empty``
    and returns an empty dict: the log has no mAP line, ``save_best`` is
    skipped and a metrics JSON is empty. Here every metric mmdet would have
    reported is 0.0 (the AP and AR of an empty detection set), with a
    warning. Per-class precisions (``classwise=True``) are 0.0 for classes
    with ground truth and NaN for the others, as mmdet reports classes
    without ground truth. With any prediction at all, this is exactly
    mmdet's CocoMetric.

    Args:
        *args, **kwargs: As :class:`mmdet.evaluation.CocoMetric`.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute COCO metrics; all zeros when nothing was predicted.

        Args:
            results (list): (gt, prediction) pairs from :meth:`process`.

        Returns:
            dict[str, float]: Metric name to value, same keys as mmdet's.
        """
        num_boxes = sum(len(pred['labels']) for _, pred in results)
        if num_boxes or self.format_only or not results:
            return super().compute_metrics(results)

        logger: MMLogger = MMLogger.get_current_instance()
        logger.warning(
            f'The model predicted no box on any of the {len(results)} '
            'evaluated images: every COCO metric is reported as 0. Expected '
            'in the first iterations of training; later it points at the '
            'score threshold (test_cfg.rcnn.score_thr) or the class mapping.')
        if self.metric_items is not None:
            for item in self.metric_items:
                if item not in SUPPORTED_ITEMS:
                    raise KeyError(f'metric item "{item}" is not supported')

        eval_results = OrderedDict()
        for metric in self.metrics:
            if metric == 'proposal_fast':
                for num in self.proposal_nums:
                    eval_results[f'AR@{num}'] = 0.0
                continue
            items = self.metric_items or DEFAULT_ITEMS[metric]
            prefix = '' if metric == 'proposal' else f'{metric}_'
            if metric != 'proposal' and self.classwise:
                eval_results.update(self._zero_classwise(results))
            for item in items:
                eval_results[f'{prefix}{item}'] = 0.0
            if metric != 'proposal':
                logger.info(f'{metric}_mAP_copypaste: ' +
                            ' '.join(['0.000'] * 6))
        return eval_results

    def _zero_classwise(self, results: list) -> Dict[str, float]:
        if self._coco_api is None:
            # As CocoMetric does without ann_file: ground truth from the data.
            with tempfile.TemporaryDirectory() as tmp:
                path = self.gt_to_coco_json(
                    gt_dicts=[gt for gt, _ in results],
                    outfile_prefix=f'{tmp}/results')
                self._coco_api = COCO(path)
        if self.cat_ids is None:
            self.cat_ids = self._coco_api.get_cat_ids(
                cat_names=self.dataset_meta['classes'])
        img_ids = set(self.img_ids or self._coco_api.get_img_ids())
        out = {}
        for cat_id in self.cat_ids:
            name = self._coco_api.load_cats(cat_id)[0]['name']
            has_gt = any(
                img_id in img_ids
                for img_id in self._coco_api.get_img_ids(cat_ids=[cat_id]))
            out[f'{name}_precision'] = 0.0 if has_gt else float('nan')
        return out
