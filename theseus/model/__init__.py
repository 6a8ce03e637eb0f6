"""Models: the :class:`~theseus.model.module.Module` contract, logical axes, layers and model families."""
