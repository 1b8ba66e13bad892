"""bf16 weights with fp32 master copies: the mixed precision of apex's O2 and of Megatron's bf16,
opt-in with TUNELAB_PRECISION=bf16 (`runtime.bf16_weights`).

Autocast keeps the weights in fp32 and casts every matrix to bf16 again in each forward pass (and
the gradients back in each backward pass). With the weights themselves in bf16 those casts are gone.
On a GPU whose loop waits on the host they are about a third of the kernel launches (smollm2-135m on
an H100: ~2,400 a step, the GPU 29 % busy), which is what this is for; it has not been measured on a
GPU yet. On a 2-core AVX512-BF16 CPU it gains nothing: a fixed minilm-l6 batch of 32 steps 5-10 %
faster, but tunelab's loop over bucketed batches ran at 41-45 samples/s against 44 under autocast,
the two copies a step (gradients in, weights out) costing what the casts saved.
The optimizer updates fp32 copies, so steps far smaller than bf16's precision (a rate of 1e-4 on a
weight of 1 is below bf16's 8 mantissa bits) still add up; after each step the copies are rounded
into the model."""

from __future__ import annotations

import contextlib

import torch

from tunelab.runtime import cast_parameters


class MasterWeights:
    """The fp32 copies of a model's trainable parameters, for a model whose parameters are bf16.

    `groups` are the optimizer's parameter groups over the model's parameters; `master_groups` are
    the same groups over the copies, for the optimizer to own. Registered with Accelerate's
    checkpointing (`state_dict` / `load_state_dict`), so a resumed job continues from the exact
    fp32 values rather than from their bf16 rounding."""

    def __init__(self, model: torch.nn.Module, groups: list[dict]):
        self.model = model
        self.params: list[torch.nn.Parameter] = [p for g in groups for p in g["params"]]
        self.masters: list[torch.Tensor] = [p.detach().float().clone() for p in self.params]
        by_id = {id(p): m for p, m in zip(self.params, self.masters)}
        self.master_groups = [{**g, "params": [by_id[id(p)] for p in g["params"]]} for g in groups]
        trained = {id(p) for p in self.params}
        # Frozen weights (a LoRA job's base model) are rounded to bf16 too, but put back exactly.
        self.frozen = [(p, p.detach().clone()) for p in model.parameters()
                       if id(p) not in trained and p.is_floating_point()]
        cast_parameters(model, torch.bfloat16)

    def grads_to_masters(self) -> None:
        """The bf16 gradients of the last backward pass, as fp32 gradients of the copies; a parameter
        without a gradient (unused in this step) leaves its copy without one, so AdamW skips it as it
        would skip the parameter."""
        into, out = [], []
        for p, m in zip(self.params, self.masters):
            if p.grad is None:
                m.grad = None
                continue
            if m.grad is None:
                m.grad = torch.empty_like(m)
            into.append(m.grad)
            out.append(p.grad)
            p.grad = None
        if into:
            torch._foreach_copy_(into, out)

    @torch.no_grad()
    def masters_to_model(self) -> None:
        torch._foreach_copy_(self.params, self.masters)

    @contextlib.contextmanager
    def fp32_model(self):
        """The model with its exact fp32 weights for the duration (an epoch's checkpoint and scoring
        see what the final model will be), then bf16 again. The parameters stay the same objects,
        so the optimizer and any wrapper keep pointing at them."""
        self.to_fp32()
        try:
            yield self.model
        finally:
            cast_parameters(self.model, torch.bfloat16)

    @torch.no_grad()
    def to_fp32(self) -> torch.nn.Module:
        """The model in fp32 with the copies' values: what training produced, before rounding."""
        cast_parameters(self.model, torch.float32)
        torch._foreach_copy_(self.params, self.masters)
        for p, original in self.frozen:
            p.copy_(original)
        return self.model

    def state_dict(self) -> dict:
        return {"masters": [m.detach() for m in self.masters]}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        saved = state["masters"]
        if len(saved) != len(self.masters) or any(s.shape != m.shape for s, m in zip(saved, self.masters)):
            raise ValueError("the saved fp32 master weights do not match this model's trainable parameters")
        torch._foreach_copy_(self.masters, [s.to(m.device) for s, m in zip(saved, self.masters)])
        self.masters_to_model()
