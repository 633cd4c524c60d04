"""Apply the deploy steps to the model a test run evaluates."""
from typing import Sequence, Union

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from shufflenet_det.deploy import (DEFAULT_DEPLOY_STEPS, deploy_model,
                                   parse_deploy_steps)


@HOOKS.register_module()
class DeployHook(Hook):
    """Run :func:`shufflenet_det.deploy.deploy_model` before testing.

    ``before_test`` runs after the runner has loaded the checkpoint
    (``load_from``), so BatchNorms are folded from the trained statistics;
    the evaluated detector is then exactly what the benchmark times.
    ``tools/test.py --fuse-conv-bn`` adds this hook.

    Args:
        steps (str | Sequence[str]): Deploy steps (see
            :data:`shufflenet_det.deploy.DEPLOY_STEPS`). Default:
            ``('fuse_conv_bn', 'channels_last')``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, steps: Union[str, Sequence[str]] = DEFAULT_DEPLOY_STEPS
                 ) -> None:
        self.steps = parse_deploy_steps(steps)

    def before_test(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        info = deploy_model(model, self.steps)
        runner.logger.info(f'DeployHook: {info}')
