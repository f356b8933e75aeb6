"""The adaptive kernel update of K-Net (paper Sec. 3.2, Eqs. (4)-(7); spec 2.5).

Given the group feature F_K assembled from each kernel's mask and the kernel K of the previous
stage, the updator computes two gates from their element-wise product and mixes the two:

    F_G  = phi_1(F_K) * phi_2(K)                      Eq. (4)
    G_F  = sigmoid(LN(psi_1(F_G)))                    Eq. (5)   (norm_in, update_gate)
    G_K  = sigmoid(LN(psi_2(F_G)))                    Eq. (5)   (input_norm_in, input_gate)
    K~   = G_F * LN(psi_3(F_K)) + G_K * LN(psi_4(K))  Eq. (6)
    out  = ReLU(LN(fc(K~)))                           Eq. (7)   (fc_layer, fc_norm)

phi_1 / psi_3 are the two halves of `dynamic_layer`, phi_2 / psi_4 the two halves of
`input_layer`. The gate-and-mix step (Eqs. 5-6, four LayerNorms, two sigmoids) is one fused op,
`knet.ops.adaptive_gate`.

Chunking (spec 2.5): the updator always works on rows of its own `in_channels`. When the head's
kernels are wider (semantic models: C = 512, updator 256), each kernel is split into
C / in_channels consecutive chunks that pass through the same updator as separate rows and are
concatenated back in the same order.
"""

from __future__ import annotations

import torch
from torch import nn

from knet.ops import adaptive_gate


class KernelUpdator(nn.Module):
    """Adaptive feature update of the kernels (gated mix of assembled feature and old kernel)."""

    def __init__(
        self,
        *,
        in_channels: int = 256,
        feat_channels: int = 256,
        out_channels: int | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if in_channels != feat_channels:
            # the original reshapes kernels with feat_channels and feeds them to a Linear of
            # in_channels inputs, so only equal sizes are well defined
            raise ValueError(f"KernelUpdator needs in_channels == feat_channels, got {in_channels} and {feat_channels}")
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.out_channels = out_channels if out_channels is not None else in_channels
        self.eps = eps
        cf = feat_channels
        self.dynamic_layer = nn.Linear(in_channels, 2 * cf)  # [phi_1 ; psi_3] on F_K
        self.input_layer = nn.Linear(in_channels, 2 * cf)  # [phi_2 ; psi_4] on K
        self.input_gate = nn.Linear(in_channels, cf)  # psi_2: gate on the old kernel
        self.update_gate = nn.Linear(in_channels, cf)  # psi_1: gate on the assembled feature
        self.norm_in = nn.LayerNorm(cf, eps=eps)
        self.norm_out = nn.LayerNorm(cf, eps=eps)
        self.input_norm_in = nn.LayerNorm(cf, eps=eps)
        self.input_norm_out = nn.LayerNorm(cf, eps=eps)
        self.fc_layer = nn.Linear(cf, self.out_channels)
        self.fc_norm = nn.LayerNorm(self.out_channels, eps=eps)
        self.activation = nn.ReLU()

    def forward(self, update_feature: torch.Tensor, input_feature: torch.Tensor) -> torch.Tensor:
        """update_feature: F_K [..., C] (C a multiple of in_channels); input_feature: K [..., S2, C].

        Returns [M, S2, out_channels] with M = (number of rows of F_K) * C / in_channels; the
        caller reshapes it back (chunks stay consecutive).
        """
        cf = self.feat_channels
        update_feature = update_feature.reshape(-1, self.in_channels)  # [M, Cin]
        m = update_feature.shape[0]
        params = self.dynamic_layer(update_feature)  # [M, 2Cf]
        param_in = params[:, :cf]  # phi_1(F_K)
        param_out = params[:, cf:]  # psi_3(F_K)

        input_feats = self.input_layer(input_feature.reshape(m, -1, cf))  # [M, S2, 2Cf]
        s2 = input_feats.shape[1]
        input_in = input_feats[..., :cf]  # phi_2(K)
        input_out = input_feats[..., cf:]  # psi_4(K)

        gate_feats = input_in * param_in.unsqueeze(-2)  # F_G, Eq. (4)  [M, S2, Cf]
        gate_k = self.input_gate(gate_feats)  # psi_2(F_G)
        gate_f = self.update_gate(gate_feats)  # psi_1(F_G)

        # Eqs. (5)-(6) fused: sigmoid(LN(gate_f)) * LN(psi_3) + sigmoid(LN(gate_k)) * LN(psi_4)
        feat_out = param_out.unsqueeze(1).expand(m, s2, cf)
        mixed = adaptive_gate(
            gate_k.reshape(m * s2, cf),
            gate_f.reshape(m * s2, cf),
            feat_out.reshape(m * s2, cf),
            input_out.reshape(m * s2, cf),
            self.input_norm_in.weight,
            self.input_norm_in.bias,
            self.norm_in.weight,
            self.norm_in.bias,
            self.norm_out.weight,
            self.norm_out.bias,
            self.input_norm_out.weight,
            self.input_norm_out.bias,
            eps=self.eps,
        ).reshape(m, s2, cf)  # K~

        out = self.fc_layer(mixed)
        out = self.fc_norm(out)
        return self.activation(out)  # Eq. (7)  [M, S2, Cout]
