"""Build a detector from a config and feed it a prepared batch, as
``model.test_step`` does in mmdet's test loop."""
import copy
import logging
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn


def _drop_pretrained(cfg):
    """Remove ``init_cfg=dict(type='Pretrained', ...)`` everywhere in a model
    config, so random-weight benchmarks never download checkpoints."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        elif isinstance(init, list):
            cfg['init_cfg'] = [
                c for c in init
                if not (isinstance(c, dict) and c.get('type') == 'Pretrained')
            ] or None
        for value in cfg.values():
            _drop_pretrained(value)
    elif isinstance(cfg, list):
        for value in cfg:
            _drop_pretrained(value)


def load_config(config: str, cfg_options: Optional[dict] = None):
    """``Config.fromfile`` plus ``--cfg-options``, with a clear error.

    Raises:
        FileNotFoundError: If ``config`` does not exist.
        ValueError: If the config has no ``model``.
    """
    import os.path as osp

    from mmengine.config import Config
    if not osp.isfile(config):
        raise FileNotFoundError(f'benchmark: config file not found: {config}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'benchmark: {config} defines no `model`')
    return cfg


def build_detector(cfg, device: torch.device,
                   checkpoint: Optional[str] = None,
                   seed: int = 0) -> nn.Module:
    """Build ``cfg.model`` in eval mode on ``device``.

    Args:
        cfg (mmengine.Config): A detector config (see :func:`load_config`).
        device (torch.device): Target device.
        checkpoint (str, optional): Weights to load. Without it the weights
            are random (the model's own initialisation, ``Pretrained``
            backbone initialisations removed, seeded with ``seed``).
        seed (int): Seed for the random initialisation. Default: 0.

    Returns:
        nn.Module: The detector, eval mode, on ``device``.
    """
    from mmdet.registry import MODELS
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import shufflenet_det  # noqa: F401  (registers our components)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    if checkpoint is None:
        _drop_pretrained(model_cfg)
    torch.manual_seed(seed)
    logger = MMLogger.get_current_instance()
    level = logger.level
    # init_weights logs one INFO record per parameter: keep the bar readable.
    logger.setLevel(logging.WARNING)
    try:
        model = MODELS.build(model_cfg)
        if checkpoint is None:
            model.init_weights()
        else:
            load_checkpoint(model, checkpoint, map_location='cpu')
    finally:
        logger.setLevel(level)
    return model.eval().to(device)


def make_batch(batch_size: int, img_size: Tuple[int, int],
               seed: int = 0) -> Dict[str, List]:
    """A batch as mmdet's test pipeline delivers it (after ``Resize`` and
    ``PackDetInputs``): uint8 images and ``DetDataSample`` meta.

    Args:
        batch_size (int): Number of images.
        img_size (tuple[int, int]): (height, width) of every image, already
            at the model's input scale (scale factor 1).
        seed (int): Seed of the random pixels. Default: 0.

    Returns:
        dict: ``inputs`` (list of uint8 tensors (3, H, W)) and
        ``data_samples`` (list of ``DetDataSample``).
    """
    from mmdet.structures import DetDataSample
    gen = torch.Generator(device='cpu').manual_seed(seed)
    height, width = img_size
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, height, width),
                                    generator=gen, dtype=torch.uint8))
        samples.append(DetDataSample(metainfo=dict(
            img_id=i, img_path=f'random_{i}.jpg', ori_shape=(height, width),
            img_shape=(height, width), scale_factor=(1.0, 1.0))))
    return dict(inputs=inputs, data_samples=samples)


def detector_step(model: nn.Module, data: dict, device: torch.device
                  ) -> Callable[[], object]:
    """One inference step: ``data_preprocessor`` (host-to-device copy,
    normalisation, padding) + ``predict`` (RPN, RoI head, NMS, rescaling).

    Args:
        model (nn.Module): An mmdet detector in eval mode.
        data (dict): From :func:`make_batch`.
        device (torch.device): The model's device. Reduced precision is a
            deploy step (``bf16`` / ``fp16``), not a property of the step.

    Returns:
        Callable: The step; returns the list of ``DetDataSample``.
    """
    def step():
        with torch.no_grad():
            return model.test_step(data)

    return step
