"""A KV-cache layer that grows in place: the decode loop's cache without a copy of the whole cache per step.

transformers' ``DynamicLayer.update`` appends a step's keys and values with ``torch.cat``, so every decode step
copies the whole cache of every layer. For SmolLM2-135M on CPU that copy is most of what a step spends outside
the matrix products, and it grows with the context (the few-shot suites' 1,000-token prompts).

``GrowingLayer`` keeps each layer's keys and values in a buffer with ``room`` free columns after the tokens
held; a step writes its column into the buffer and ``keys``/``values`` are views of the part in use, so the
model sees exactly the tensors it saw before (same values, same shapes). Rows that leave the batch are packed
to the front of the buffer; columns cut from the front are a view. Anything that assigns ``keys``/``values``
directly (a merge of two caches) is noticed at the next update, which copies into a fresh buffer.
"""

from __future__ import annotations

from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``update`` writes into a preallocated buffer (``room`` columns at a time)."""

    room = 64

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized or self.keys.numel() == 0:
            return super().update(key_states, value_states, *args, **kwargs)
        held, new = self.keys.shape[-2], key_states.shape[-2]
        if self.keys is not getattr(self, "_key_view", None) or self._buffers[0].shape[-2] < held + new:
            self._reserve(held + new + self.room)
        for buffer, states in zip(self._buffers, (key_states, value_states)):
            buffer[:, :, held : held + new] = states
        self._expose(held + new)
        return self.keys, self.values

    def batch_select_indices(self, indices) -> None:
        """Keep the rows ``indices`` (any order), packed at the buffer's front."""
        if self.keys is not getattr(self, "_key_view", None):
            return super().batch_select_indices(indices)
        held = self.keys.shape[-2]
        kept = []
        for buffer in self._buffers:
            buffer[: len(indices), :, :held] = buffer[indices, :, :held]  # indexing copies first: no aliasing
            kept.append(buffer[: len(indices)])
        self._buffers = kept
        self._expose(held)

    def drop_front(self, columns: int) -> None:
        """Forget the first ``columns`` positions of every row (padding no remaining row attends to)."""
        if self.keys is not getattr(self, "_key_view", None):
            self.keys, self.values = self.keys[:, :, columns:], self.values[:, :, columns:]
            return
        held = self.keys.shape[-2]
        self._buffers = [buffer[:, :, columns:] for buffer in self._buffers]
        self._expose(held - columns)

    def _reserve(self, capacity: int) -> None:
        held = self.keys.shape[-2]
        self._buffers = []
        for tensor in (self.keys, self.values):
            shape = list(tensor.shape)
            shape[-2] = capacity
            buffer = tensor.new_empty(shape)
            buffer[:, :, :held] = tensor
            self._buffers.append(buffer)

    def _expose(self, held: int) -> None:
        self.keys, self.values = (buffer[:, :, :held] for buffer in self._buffers)
        self._key_view = self.keys


def grow_in_place(cache, room: int) -> None:
    """Turn every plain ``DynamicLayer`` of ``cache`` into a ``GrowingLayer`` with ``room`` free columns (the
    most steps the batch can still take); other layer kinds (sliding windows, quantized) are left as they are."""
    for layer in cache.layers:
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel():
            adopt(layer, room)


def adopt(layer, room: int) -> GrowingLayer:
    """``layer`` (a filled ``DynamicLayer``) becomes a ``GrowingLayer`` holding the same keys and values."""
    layer.__class__ = GrowingLayer  # same state, an update that writes in place
    layer.room = max(1, room)
    layer._reserve(layer.keys.shape[-2] + layer.room)
    layer._expose(layer.keys.shape[-2])
    return layer
