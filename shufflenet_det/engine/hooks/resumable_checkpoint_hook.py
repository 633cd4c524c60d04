"""A CheckpointHook whose checkpoints survive a kill and resume exactly."""
import logging
import os.path as osp
from typing import Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmdet.registry import HOOKS

from ..atomic_io import atomic_write_bytes
from ..rng_state import get_rng_state, set_rng_state

RNG_KEY = 'rng_states'


@HOOKS.register_module()
class ResumableCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook`, made safe to resume from.

    Same arguments and schedule as mmengine's hook; three differences:

    1. **Atomic files.** Checkpoints and the ``last_checkpoint`` pointer are
       written to a temporary file and renamed into place (backend
       ``'atomic_local'``, see :mod:`shufflenet_det.engine.atomic_io`), so a
       kill while saving never leaves a truncated file under a real name.
    2. **Save, then prune.** With ``max_keep_ckpts``, mmengine deletes the
       oldest checkpoint *before* writing the new one; a kill in between
       leaves ``last_checkpoint`` pointing at nothing. Here the old file is
       removed only once the new one and the pointer are in place.
    3. **Exact resume.** Every rank's Python/NumPy/torch RNG state is stored
       in ``meta['rng_states']`` and restored, per rank, at the first
       iteration after ``resume``; mmengine only re-seeds, so a resumed run
       draws different proposal samples than an uninterrupted one.
       Validation is made RNG-neutral for the same reason. Randomness in
       data transforms run by DataLoader workers is replayed by the workers'
       own seeding; with ``num_workers=0`` it shares the global RNG and a
       random pipeline is then not replayed exactly.

    Non-local ``out_dir`` (``s3://`` ...) or an explicit ``backend_args``
    keep mmengine's writes for the files; steps 2 and 3 still apply.
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None \
            else runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend='atomic_local')
        super().before_train(runner)

    # ----------------------------------------------------- saving, in order
    def _save_checkpoint_with_step(self, runner, step, meta):
        # Every rank is here (the save itself is master-only): gather RNGs.
        meta = dict(meta, **{RNG_KEY: all_gather_object(get_rng_state())})

        to_remove = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                to_remove = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            # Updated before saving so that the checkpoint records itself.
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write_bytes(
            str(self.last_ckpt).encode(),
            osp.join(runner.work_dir, 'last_checkpoint'))
        if to_remove is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(to_remove))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)

    # ------------------------------------------------------------ resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {})
        self._pending_rng = (meta.get('iter'), meta.get(RNG_KEY))

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        pending: Optional[tuple] = getattr(self, '_pending_rng', None)
        if pending is None:
            return
        self._pending_rng = None
        resumed_iter, states = pending
        # load_from (fine-tuning) also loads a checkpoint: restore only when
        # training continues exactly where that checkpoint stopped.
        if states is None or resumed_iter != runner.iter:
            return
        if len(states) != get_world_size():
            print_log(
                f'Checkpoint RNG states are for {len(states)} process(es), '
                f'this run has {get_world_size()}: not restored, so the '
                'resumed run is not bit-identical to an uninterrupted one.',
                logger='current', level=logging.WARNING)
            return
        set_rng_state(states[get_rank()])

    def before_val_epoch(self, runner) -> None:
        self._rng_before_val = get_rng_state()

    def after_val_epoch(self, runner, metrics) -> None:
        state = getattr(self, '_rng_before_val', None)
        if state is not None:
            set_rng_state(state)
        self._rng_before_val = None
        super().after_val_epoch(runner, metrics)
