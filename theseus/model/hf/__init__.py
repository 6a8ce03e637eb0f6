"""The machinery behind :class:`theseus.model.huggingface.HFCompat`.

``checkpoint`` finds a checkpoint folder (or fetches a hub id), ``safetensors`` reads and
writes its weights without torch, ``architecture`` reads ``config.json``, ``layers`` and
``families`` are the JAX networks with the checkpoint's parameter names, ``axes`` their
default logical axes, ``load`` places the weights on the devices, ``writer`` writes a folder
back and ``from_gpt`` maps the native GPT onto a transformers class.
"""
