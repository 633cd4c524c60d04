"""The backbone contract shared by every backbone of the Table 7 suite."""
import inspect
import logging
import os.path as osp
from collections import OrderedDict
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


#: Where a run without public ImageNet weights gets them, or how it opts out.
SCRATCH_BASE = ('configs/_base_/models/'
                'light-head-rcnn_shufflenetv2_from-scratch.py')


def check_pretrained_weights(backbone_cfg: Optional[dict],
                             where: str) -> None:
    """Fail when ``init_cfg`` asks for ImageNet weights but names none.

    Table 7 configs whose backbone has no public ImageNet weights set
    ``init_cfg=dict(type='Pretrained', checkpoint=None)``: with the official
    recipe (stem and first stage frozen, BN frozen) they would otherwise
    train on top of randomly initialised frozen layers. The backbone's own
    ``init_weights`` calls this too, so the same message stops mmdet's
    ``tools/train.py`` (which knows nothing of this project) as well as ours.

    Args:
        backbone_cfg (dict, optional): ``model.backbone`` of a config.
        where (str): Named first in the error: a config file or a class.

    Raises:
        ValueError: If ``init_cfg`` is ``Pretrained`` with no checkpoint. The
            message names the ImageNet config that trains the weights
            (``configs/imagenet/<backbone>_8xb128_in1k.py``) and the key to
            set, ``model.backbone.init_cfg.checkpoint``.
    """
    init = (backbone_cfg or {}).get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained' and \
            init.get('checkpoint') is None:
        pretrain = imagenet_config_of(backbone_cfg)
        how = (f'train them with {pretrain} (e.g. bash tools/dist_train.sh '
               f'{pretrain} 8)' if pretrain else
               'train them with a classifier config of configs/imagenet/')
        raise ValueError(
            f'{where}: model.backbone.init_cfg.checkpoint is None: no public '
            f'ImageNet weights exist for {backbone_cfg.get("type")}'
            f'{_width_of(backbone_cfg)}, and the Table 7 recipe freezes its '
            'first layers and its BN layers, which would stay random. '
            f'ImageNet weights: {how}, then set the key '
            'model.backbone.init_cfg.checkpoint to that checkpoint, e.g. '
            '--cfg-options model.backbone.init_cfg.checkpoint=PATH (the '
            'classifier checkpoint or the bare backbone). Or choose the '
            'from-scratch recipe explicitly: '
            f'inherit {SCRATCH_BASE} (nothing frozen, SyncBN, longer '
            'schedule; not comparable with Table 7).')


def imagenet_config_of(backbone_cfg: dict) -> Optional[str]:
    """The ImageNet config that pretrains ``backbone_cfg``, if it exists.

    Args:
        backbone_cfg (dict): ``model.backbone`` of a detector config.

    Returns:
        str | None: ``configs/imagenet/<family>-<width>x_8xb128_in1k.py``
        relative to the repository root, or None when the backbone type is
        not one of ours, its arch is a custom dict, or no such file is in
        this checkout.
    """
    from mmdet.registry import MODELS
    cls = MODELS.get(str(backbone_cfg.get('type', '')).split('.')[-1])
    if not (isinstance(cls, type) and issubclass(cls, BaseDetBackbone)):
        return None
    name = cls.imagenet_config_name(backbone_cfg)
    if name is None:
        return None
    rel = f'configs/imagenet/{name}'
    # shufflenet_det/models/backbones/ -> the repository root
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    return rel if osp.isfile(osp.join(root, rel)) else None


def _width_of(backbone_cfg: dict) -> str:
    for key in ('arch', 'widen_factor'):
        if key in backbone_cfg:
            return f' {key}={backbone_cfg[key]!r}'
    return ''


class BaseDetBackbone(BaseModule):
    """One implementation of the mmdet backbone contract.

    A subclass builds ``self.stem`` (the layers before the first stage),
    ``self.layers`` (an ``nn.ModuleList`` of stages; a trailing 1x1 conv such
    as ShuffleNet V2's conv5 counts as a stage), and the per-stage tuples
    ``self.stage_channels`` and ``self.stage_strides``, then calls
    :meth:`_check_contract`. Heads size themselves from :attr:`out_channels`
    and :attr:`out_strides`, so configs never restate backbone widths. This class owns everything else, so freezing,
    ``norm_eval``, gradient checkpointing and pretrained loading behave the
    same in all five backbones.

    Args:
        out_indices (Sequence[int]): Indices into ``self.layers`` whose outputs
            are returned.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k the stem and
            ``layers[:k]``. Frozen layers get ``requires_grad=False`` and
            their norm layers stay in eval mode.
        norm_eval (bool): Keep every ``_BatchNorm`` (BN, SyncBN, ...) in eval
            mode during training, i.e. freeze the running statistics.
        with_cp (bool): Gradient checkpointing per block while training.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint=...)`` loads weights through :meth:`convert_pretrained`,
            so foreign layouts (torchvision, mmpretrain) load directly.
    """

    def __init__(self,
                 out_indices: Sequence[int],
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.out_indices = tuple(out_indices) if isinstance(
            out_indices, (list, tuple)) else out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    # ------------------------------------------------------------------ checks
    def _check_contract(self) -> None:
        """Validate out_indices/frozen_stages once the stages exist."""
        num = len(self.layers)
        assert len(self.stage_channels) == len(self.stage_strides) == num, \
            'stage_channels/stage_strides must have one entry per stage'
        if (not isinstance(self.out_indices, tuple) or not self.out_indices
                or any(not isinstance(i, int) or not 0 <= i < num
                       for i in self.out_indices)):
            raise ValueError(f'{type(self).__name__}: out_indices must be a '
                             f'non-empty tuple of ints in range(0, {num}). '
                             f'But received {self.out_indices!r}')
        if not isinstance(self.frozen_stages, int) or \
                not -1 <= self.frozen_stages <= num:
            raise ValueError(f'{type(self).__name__}: frozen_stages must be '
                             f'in range(-1, {num + 1}). '
                             f'But received {self.frozen_stages!r}')
        # Stages after the last requested output can never reach a head: not
        # keeping them saves their compute and leaves DDP no parameter
        # without a gradient. ``stage_channels``/``stage_strides`` still
        # describe the full network.
        del self.layers[max(self.out_indices) + 1:]
        self._freeze_stages()

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map, in ``out_indices`` order."""
        return tuple(self.stage_channels[i] for i in sorted(self.out_indices))

    @property
    def out_strides(self) -> Tuple[int, ...]:
        """Stride (input pixels per feature pixel) of each returned map."""
        return tuple(self.stage_strides[i] for i in sorted(self.out_indices))

    # ------------------------------------------------------------- freezing
    def _frozen_modules(self):
        if self.frozen_stages >= 0:
            yield self.stem
        yield from self.layers[:max(self.frozen_stages, 0)]

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Switch mode, keeping frozen stages and (optionally) norms in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # -------------------------------------------------------------- forward
    def _run_stage(self, stage: nn.Module, x: Tensor) -> Tensor:
        if not (self.with_cp and self.training and x.requires_grad):
            return stage(x)
        blocks = stage if isinstance(stage, nn.Sequential) else [stage]
        for block in blocks:
            x = cp.checkpoint(block, x, use_reentrant=False)
        return x

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Forward an image batch.

        Args:
            x (Tensor): Images of shape (N, 3, H, W).

        Returns:
            tuple[Tensor]: One feature map per entry of ``out_indices``, in
            increasing index order, each of shape (N, C_i, H/s_i, W/s_i).
        """
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.layers):
            x = self._run_stage(stage, x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    # ------------------------------------------------------------- building
    def _build_stem_and_stages(self, make_unit: Callable[..., nn.Module],
                               norm_cfg: dict, act_cfg: dict) -> int:
        """Build the stem and one stage per ``self.arch`` width.

        The ShuffleNet-style layout shared by ShuffleNet v1/v2 and the
        Xception-like backbone: a 3x3 stride-2 conv + 3x3 stride-2 max-pool
        stem (stride 4), then stages whose first unit has stride 2.

        Args:
            make_unit (Callable): ``make_unit(stage, index, in_channels,
                out_channels, stride)`` returns one unit.
            norm_cfg (dict): Norm config of the stem conv.
            act_cfg (dict): Activation config of the stem conv.

        Returns:
            int: Output channels of the last stage.
        """
        stem = self.arch['stem']
        self.stem = nn.Sequential(
            ConvModule(3, stem, 3, stride=2, padding=1, bias=False,
                       norm_cfg=norm_cfg, act_cfg=act_cfg),
            nn.MaxPool2d(3, stride=2, padding=1))
        self.layers = nn.ModuleList()
        in_ch = stem
        for s, (out_ch, repeat) in enumerate(
                zip(self.arch['channels'], self.arch['repeats'])):
            self.layers.append(nn.Sequential(*[
                make_unit(s, i, in_ch if i == 0 else out_ch, out_ch,
                          2 if i == 0 else 1) for i in range(repeat)]))
            in_ch = out_ch
        return in_ch

    # ---------------------------------------------------------------- arch
    #: Subclasses with width tables set these: named archs and the keys a
    #: custom arch dict must have. ``num_stages`` is the length that
    #: ``channels``/``repeats`` of a custom arch must have.
    arch_settings: Dict[str, dict] = {}
    arch_keys: Tuple[str, ...] = ()
    num_stages: int = 3
    #: ``<family>`` of ``configs/imagenet/<family>-<width>x_8xb128_in1k.py``,
    #: the classifier config that pretrains this backbone on ImageNet.
    imagenet_family: Optional[str] = None
    #: The constructor argument that sets the width ('arch', 'widen_factor').
    width_arg: str = 'arch'

    def own_cfg(self) -> dict:
        """``type`` and the width argument this backbone was built with,
        e.g. ``dict(type='XceptionLike', arch='1.0x')``, for messages."""
        cfg = dict(type=type(self).__name__)
        if self.width_arg == 'arch':
            cfg['arch'] = next((k for k, v in self.arch_settings.items()
                                if v == self.arch), dict(self.arch))
        else:
            cfg[self.width_arg] = getattr(self, self.width_arg)
        return cfg

    @classmethod
    def imagenet_family_of(cls, backbone_cfg: dict) -> Optional[str]:
        """``imagenet_family``; subclasses with variants (V2*) override."""
        return cls.imagenet_family

    @classmethod
    def imagenet_config_name(cls, backbone_cfg: dict) -> Optional[str]:
        """``<family>-<width>x_8xb128_in1k.py`` for a backbone config.

        Args:
            backbone_cfg (dict): Constructor arguments (``type`` included
                or not); missing ones take the constructor's defaults.

        Returns:
            str | None: The file name (widths as ``0.5x``, ``1x``, ``0.15x``),
            or None for a custom arch dict or a class without a family.
        """
        family = cls.imagenet_family_of(backbone_cfg)
        width = backbone_cfg.get(
            cls.width_arg,
            inspect.signature(cls.__init__).parameters[cls.width_arg].default)
        if family is None or isinstance(width, dict):
            return None
        number = float(width[:-1] if isinstance(width, str) and
                       width.endswith('x') else width)
        return f'{family}-{number:g}x_8xb128_in1k.py'

    @classmethod
    def _resolve_arch(cls, arch) -> dict:
        """Look ``arch`` up in ``arch_settings`` or validate a custom dict.

        Args:
            arch (str | float | dict): A key such as ``'1.0x'`` (``1.0`` and
                ``1`` are accepted too) or a dict with ``arch_keys``.

        Raises:
            ValueError: Naming the unknown key or the incomplete dict.
        """
        name = cls.__name__
        if isinstance(arch, dict):
            missing = [k for k in cls.arch_keys if k not in arch]
            if missing:
                raise ValueError(f'{name}: custom arch lacks {missing}; '
                                 f'got {arch}')
            for key in ('channels', 'repeats'):
                if key in arch and len(arch[key]) != cls.num_stages:
                    raise ValueError(f'{name}: custom arch needs '
                                     f'{cls.num_stages} {key}; got {arch}')
            return dict(arch)
        key = f'{float(arch):.1f}x' if isinstance(arch, (int, float)) \
            else str(arch)
        if key not in cls.arch_settings:
            raise ValueError(f'{name}: unknown arch {arch!r}; expected '
                             f'one of {sorted(cls.arch_settings)} or a dict')
        return dict(cls.arch_settings[key])

    # ---------------------------------------------------------- pretrained
    def convert_pretrained(self, state_dict: Dict[str, Tensor]
                           ) -> Dict[str, Tensor]:
        """Map a foreign state dict onto this module's keys (identity here)."""
        return state_dict

    def init_weights(self) -> None:
        """Kaiming (fan_out) convs without ``init_cfg``; else follow it."""
        cfg = self.init_cfg
        if cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode='fan_out',
                                            nonlinearity='relu')
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            check_pretrained_weights(dict(self.own_cfg(), init_cfg=cfg),
                                     type(self).__name__)
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))
            self._is_init = True
        else:
            super().init_weights()

    def load_pretrained(self, checkpoint: str,
                        prefix: Optional[str] = None) -> None:
        """Load a classification checkpoint, reporting every key it skips.

        Args:
            checkpoint (str): Path or URL understood by mmengine's
                ``CheckpointLoader`` (``torchvision://``, ``http(s)://``...).
            prefix (str, optional): Keep only keys under this prefix (e.g.
                ``'backbone.'`` for an mmpretrain classifier) and strip it.
                Default: ``'backbone.'`` if the checkpoint has such keys (a
                ``configs/imagenet/`` or mmpretrain classifier, a detector),
                else none.

        Raises:
            ValueError: If a tensor's shape differs from the model's (wrong
                width or arch) or if no key of the checkpoint matches.
        """
        state = self.convert_pretrained(
            _read_state_dict(checkpoint, prefix))
        # Stages after the last out index are not built (_check_contract):
        # a classifier's weights for them (e.g. ShuffleNet V2's conv5) have
        # no destination by design, so they are set aside, not "unused".
        unbuilt = tuple(f'layers.{i}.' for i in range(
            len(self.layers), len(self.stage_channels)))
        skipped = [k for k in state if k.startswith(unbuilt)]
        state = OrderedDict((k, v) for k, v in state.items()
                            if not k.startswith(unbuilt))
        matched = self._check_pretrained(checkpoint, state)
        with torch.no_grad():
            self.load_state_dict(state, strict=False)
        #: Keys this checkpoint provided (subclasses initialise the rest).
        self.loaded_keys = set(matched)
        self._report_pretrained(checkpoint, state, matched, skipped, unbuilt)
        # Re-apply freezing: load_state_dict does not touch requires_grad, but
        # keep the contract explicit after any weight surgery.
        self._freeze_stages()

    def _check_pretrained(self, checkpoint: str, state: dict) -> list:
        """The keys of ``state`` this backbone has; raises ``ValueError`` if
        a tensor does not fit or none matches."""
        own = self.state_dict()
        mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model '
                      f'{tuple(own[k].shape)}' for k, v in state.items()
                      if k in own and own[k].shape != v.shape]
        if mismatched:
            raise ValueError(f'{checkpoint}: {len(mismatched)} tensor(s) do '
                             f'not fit {type(self).__name__}: ' +
                             '; '.join(mismatched))
        matched = [k for k in state if k in own]
        if not matched:
            raise ValueError(f'{checkpoint}: none of its {len(state)} keys '
                             f'(e.g. {list(state)[:3]}) matches '
                             f'{type(self).__name__}')
        return matched

    def _report_pretrained(self, checkpoint: str, state: dict, matched: list,
                           skipped: list, unbuilt: tuple) -> None:
        """Log what was loaded, and every key missing, unused or skipped."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        msg = f'{type(self).__name__}: loaded {len(matched)} tensors from ' \
              f'{checkpoint}'
        if missing:
            msg += f'; missing in checkpoint (kept initialised): {missing}'
        if unexpected:
            msg += f'; unused from checkpoint: {unexpected}'
        if skipped:
            msg += (f'; skipped {len(skipped)} tensors of stages not built '
                    f'(after the last out index): {unbuilt}')
        print_log(msg, logger='current',
                  level=logging.WARNING if missing else logging.INFO)


def _read_state_dict(checkpoint: str, prefix: Optional[str]) -> OrderedDict:
    """A checkpoint's state dict: unwrapped from ``state_dict``/``model``,
    ``module.`` stripped, keys under ``prefix`` only (default
    ``'backbone.'`` when it has such keys) with the prefix stripped."""
    state = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f'{checkpoint}: expected a state dict, got '
                         f'{type(state).__name__}')
    state = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state.items())
    if prefix is None and any(k.startswith('backbone.') for k in state):
        prefix = 'backbone.'
    if prefix:
        state = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                            if k.startswith(prefix))
    return state
