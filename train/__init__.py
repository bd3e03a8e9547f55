"""emopi workstation side: FER-2013 loaders, training, reports and int8 quantisation.

Needs the ``train`` extra (TensorFlow). Modules import TensorFlow lazily where they can,
so ``emopi train --help`` is fast.
"""
