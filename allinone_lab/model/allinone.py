"""The All-in-one Transformer: one ViT backbone over raw video patches and text tokens.

Per frame the joint sequence is ``[text (m) ; video CLS ; patches (N)]``; the ``S`` frames of a video are
a batch of ``B*S`` sequences that interact only through the temporal module before each block (token
rolling by default). After the final norm every token is averaged over frames and the pooled feature is
``tanh(Linear(text CLS))``. Text-only and video-only calls give the unimodal features used by
dual-stream retrieval.

Shapes: video ``(B, S, C, H, W)``, text ids and mask ``(B, m)``, width ``D``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, trunc_normal_
from torch import Tensor, nn

from .blocks import AllInOneBlock, DecoupledBlock, Layout, TimeSformerBlock
from .config import ModelConfig
from .heads import MCHead, MLMHead, Pooler, QAHead, VTCHead, VTMHead
from .layers import LayerNorm, PatchEmbed
from .temporal import ChannelShift, TokenRolling, token_origins

TEXT, VIDEO = 0, 1


@dataclass
class AllInOneOutput:
    """Backbone outputs, averaged over frames.

    Attributes:
        text_tokens: ``(B, m, D)`` or None when no text was given.
        video_tokens: ``(B, L, D)`` visual tokens (CLS [+ dist] then patches in raster order) or None.
        video_frame_tokens: ``(B, S, L, D)`` the same before the frame average, by frame slot: with token
            rolling a slot holds tokens that came from other frames (:meth:`AllInOne.token_origins`;
            :func:`~allinone_lab.model.temporal.restore_frame_order` puts them back, for per-frame maps).
        pooled: ``(B, D)`` ``tanh(Linear(text CLS))`` or None when no text was given.
        text_mask: ``(B, m)`` the attention mask of the text, or None.
    """

    text_tokens: Tensor | None
    video_tokens: Tensor | None
    video_frame_tokens: Tensor | None
    pooled: Tensor | None
    text_mask: Tensor | None


class TextEmbedding(nn.Module):
    """BERT-style text embedding: word + learned position + token-type (always 0), then LayerNorm.

    ``(B, m)`` ids -> ``(B, m, D)``.
    """

    def __init__(self, vocab_size: int, dim: int, max_len: int, eps: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, dim)
        self.position_embeddings = nn.Embedding(max_len, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.norm = LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor) -> Tensor:
        length = ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"text of {length} tokens exceeds max_text_len={self.position_embeddings.num_embeddings}"
            )
        x = self.word_embeddings(ids) + self.position_embeddings.weight[:length] + self.token_type_embeddings.weight[0]
        return self.dropout(self.norm(x))


class AllInOne(nn.Module):
    """The unified video-language Transformer with its pre-training and fine-tuning heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        dim, depth = config.embed_dim, config.num_layers

        self.text_embed = TextEmbedding(
            config.vocab_size, dim, config.max_text_len, config.text_layernorm_eps, config.dropout
        )
        self.patch_embed = PatchEmbed(
            config.image_size, config.patch_size, config.in_chans, dim, strict_img_size=False
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.distilled else None
        self.pos_embed = self.temporal_embed = None
        if config.use_spe:
            self.pos_embed = nn.Parameter(torch.zeros(1, config.visual_len, dim))
            if config.use_temporal_embed:
                self.temporal_embed = nn.Parameter(torch.zeros(1, config.num_frames, dim))
        self.modality_embed = nn.Embedding(2, dim) if config.use_mte else None
        self.pos_drop = nn.Dropout(config.dropout)

        drop_path = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(self._make_block(i, drop_path[i]) for i in range(depth))
        self.norm = LayerNorm(dim, eps=config.layernorm_eps)

        self.pooler = Pooler(dim)
        self.vtm_head = VTMHead(dim)
        self.mlm_head = MLMHead(dim, config.vocab_size, config.text_layernorm_eps)
        self.vtc_head = VTCHead(dim, config.vtc_dim, config.vtc_temperature, config.vtc_learnable_temperature)
        self.qa_head = QAHead(dim, config.num_answers) if config.num_answers else None
        self.mc_head = MCHead(dim) if config.mc_head else None

        self.init_weights()

    def _make_block(self, index: int, drop_path: float) -> AllInOneBlock:
        cfg = self.config
        args = (cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio_, drop_path, cfg.layernorm_eps)
        if cfg.temporal == "timesformer":
            return TimeSformerBlock(*args, proj_drop=cfg.dropout)
        if cfg.temporal == "decoupled":
            return DecoupledBlock(*args, proj_drop=cfg.dropout)
        temporal: nn.Module | None = None
        first = cfg.first_temporal_block - 1
        if index >= first and cfg.temporal == "roll":
            temporal = TokenRolling(
                cfg.roll_ratio, cfg.roll_selection, index - first, cfg.roll_seed, cfg.num_prefix_tokens
            )
        elif index >= first and cfg.temporal == "channel_shift":
            temporal = ChannelShift()
        return AllInOneBlock(*args, temporal=temporal, proj_drop=cfg.dropout)

    # Weight initialisation, kept in one place --------------------------------------------------
    def init_weights(self) -> None:
        """Truncated-normal(0.02) linears and position/class tokens, N(0, 0.02) embeddings, unit norms,
        zero biases; the TimeSformer temporal projections start at zero (identity blocks)."""
        for tensor in (self.cls_token, self.dist_token, self.pos_embed, self.temporal_embed):
            if tensor is not None:
                trunc_normal_(tensor, std=0.02)
        if self.config.pos_embed_init == "sincos":
            with torch.no_grad():
                if self.pos_embed is not None:
                    prefix = self.config.num_prefix_tokens
                    self.pos_embed[0, :prefix].zero_()
                    self.pos_embed[0, prefix:] = sincos_2d(self.config.grid_size, self.config.embed_dim)
                if self.temporal_embed is not None:
                    self.temporal_embed[0] = sincos_1d(torch.arange(self.config.num_frames), self.config.embed_dim)
        self.apply(_init_module)
        for block in self.blocks:
            if isinstance(block, TimeSformerBlock):
                nn.init.zeros_(block.temporal_fc.weight)
                nn.init.zeros_(block.temporal_fc.bias)

    # Embeddings --------------------------------------------------------------------------------
    def embed_text(self, ids: Tensor) -> Tensor:
        """``(B, m)`` ids -> ``(B, m, D)`` text tokens with the modality-type embedding."""
        x = self.text_embed(ids)
        if self.modality_embed is not None:
            x = x + self.modality_embed.weight[TEXT]
        return x

    def embed_video(self, video: Tensor) -> Tensor:
        """``(B, S, C, H, W)`` frames -> ``(B, S, L, D)`` visual tokens ``[CLS (+dist) ; patches]``."""
        if video.ndim != 5:
            raise ValueError(f"video must be (B, S, C, H, W); got shape {tuple(video.shape)}")
        batch, frames, chans, height, width = video.shape
        cfg = self.config
        if height % cfg.patch_size or width % cfg.patch_size:
            raise ValueError(f"frame size {height}x{width} is not divisible by patch_size={cfg.patch_size}")
        patches = self.patch_embed(video.reshape(batch * frames, chans, height, width))  # (B*S, N, D)
        grid = (height // cfg.patch_size, width // cfg.patch_size)
        prefix = [self.cls_token.expand(patches.shape[0], -1, -1)]
        if self.dist_token is not None:
            prefix.append(self.dist_token.expand(patches.shape[0], -1, -1))
        if self.pos_embed is not None:
            pos = self.pos_embed
            if grid != (cfg.grid_size, cfg.grid_size):
                pos = resample_abs_pos_embed(
                    pos, new_size=list(grid), old_size=[cfg.grid_size] * 2, num_prefix_tokens=cfg.num_prefix_tokens
                )
            prefix = [token + pos[:, i : i + 1] for i, token in enumerate(prefix)]
            patches = patches + pos[:, cfg.num_prefix_tokens :]
            if self.temporal_embed is not None:
                patches = patches.view(batch, frames, -1, patches.shape[-1]) + self.frame_embedding(frames)[None, :, None]
                patches = patches.flatten(0, 1)
        x = torch.cat(prefix + [patches], dim=1)
        if self.modality_embed is not None:
            x = x + self.modality_embed.weight[VIDEO]
        return self.pos_drop(x).view(batch, frames, x.shape[1], x.shape[2])

    def frame_embedding(self, frames: int) -> Tensor:
        """``(S, D)`` temporal embedding; linearly resampled when ``S`` differs from ``num_frames``."""
        emb = self.temporal_embed[0]
        if frames == emb.shape[0]:
            return emb
        return F.interpolate(emb.t()[None], size=frames, mode="linear", align_corners=False)[0].t()

    # Backbone ----------------------------------------------------------------------------------
    def forward(
        self,
        video: Tensor | None = None,
        text_ids: Tensor | None = None,
        text_mask: Tensor | None = None,
        shuffle_patches: bool | None = None,
    ) -> AllInOneOutput:
        """Run the backbone on video and text together, or on either alone.

        Args:
            video: ``(B, S, C, H, W)`` normalised frames, or None for text only.
            text_ids: ``(B, m)`` WordPiece ids (``[CLS]`` first), or None for video only.
            text_mask: ``(B, m)`` 1 for real tokens, 0 for padding (None: no padding).
            shuffle_patches: permute each frame's patches before the blocks (the released checkpoints'
                behaviour; uses torch's global RNG); None takes ``config.shuffle_patches``.
        """
        if video is None and text_ids is None:
            raise ValueError("AllInOne.forward needs video, text_ids or both")
        text = self.embed_text(text_ids) if text_ids is not None else None
        visual = self.embed_video(video) if video is not None else None  # (B, S, L, D)
        batch = (text if text is not None else visual).shape[0]
        if text is not None and visual is not None and visual.shape[0] != batch:
            raise ValueError(f"video batch {visual.shape[0]} != text batch {batch}")
        frames = visual.shape[1] if visual is not None else 1
        m = text.shape[1] if text is not None else 0

        inverse = None
        if visual is not None and (self.config.shuffle_patches if shuffle_patches is None else shuffle_patches):
            visual, inverse = self._shuffle_patches(visual)

        if self.config.temporal == "flatten" and visual is not None:
            x = visual.flatten(1, 2)
            if text is not None:
                x = torch.cat((text, x), dim=1)  # (B, m + S*L, D): one sequence per video
            layout = Layout(frames=1, text_len=m, attn_mask=self._attn_mask(text_mask, 1, x.shape[1]))
        else:
            parts = [] if text is None else [text[:, None].expand(-1, frames, -1, -1)]
            if visual is not None:
                parts.append(visual)
            x = torch.cat(parts, dim=2).flatten(0, 1)  # (B*S, m + L, D)
            mixed = frames
            if text is None and not self.config.roll_unimodal and self.config.temporal in ("roll", "channel_shift"):
                mixed = 1  # released behaviour: video-only input is not rolled (frames stay independent)
            layout = Layout(frames=mixed, text_len=m, attn_mask=self._attn_mask(text_mask, frames, x.shape[1]))

        for block in self.blocks:
            x = block(x, layout)
        x = self.norm(x)

        if self.config.temporal == "flatten" and visual is not None:
            text_tokens = x[:, :m] if text is not None else None
            frame_tokens = x[:, m:].reshape(batch, frames, -1, x.shape[-1])
        else:
            x = x.view(batch, frames, x.shape[1], x.shape[2])
            text_tokens = x[:, :, :m].mean(dim=1) if text is not None else None
            frame_tokens = x[:, :, m:] if visual is not None else None
        if frame_tokens is not None and inverse is not None:
            frame_tokens = self._unshuffle(frame_tokens, inverse)
        pooled = self.pooler(text_tokens[:, 0]) if text_tokens is not None else None
        return AllInOneOutput(
            text_tokens=text_tokens,
            video_tokens=frame_tokens.mean(dim=1) if frame_tokens is not None else None,
            video_frame_tokens=frame_tokens,
            pooled=pooled,
            text_mask=text_mask,
        )

    def token_origins(self, num_frames: int, with_text: bool = True, num_visual: int | None = None) -> Tensor:
        """``(depth, S, L)`` int64: the frame each visual token came from when each block's attention runs;
        the last block's entry also holds for :attr:`AllInOneOutput.video_frame_tokens` (token rolling
        permutes tokens across frames, and the permutation persists). See :func:`.temporal.token_origins`.

        ``with_text=False``: video-only input, rolled only with ``config.roll_unimodal``. Patches in raster
        order (``shuffle_patches=False``). ``num_visual``: visual tokens per frame (default: the config's).
        """
        modules = [getattr(block, "temporal", None) for block in self.blocks]
        if not with_text and not self.config.roll_unimodal:
            modules = [None] * len(modules)
        return token_origins(modules, num_frames, self.config.visual_len if num_visual is None else num_visual)

    def _attn_mask(self, text_mask: Tensor | None, frames: int, length: int) -> Tensor | None:
        """Boolean ``(B*frames, 1, 1, length)`` key mask hiding padded text positions, or None."""
        if text_mask is None:
            return None
        keep = text_mask.bool()
        pad = length - keep.shape[1]
        keep = torch.cat((keep, keep.new_ones(keep.shape[0], pad)), dim=1)
        return keep.repeat_interleave(frames, dim=0)[:, None, None, :]

    def _shuffle_patches(self, visual: Tensor) -> tuple[Tensor, Tensor]:
        """Independently permute each frame's patch tokens; returns tokens and the inverse permutation."""
        batch, frames, length, dim = visual.shape
        prefix = self.config.num_prefix_tokens
        perm = torch.rand(batch, frames, length - prefix, device=visual.device).argsort(dim=-1)
        patches = torch.gather(visual[:, :, prefix:], 2, perm[..., None].expand(-1, -1, -1, dim))
        return torch.cat((visual[:, :, :prefix], patches), dim=2), perm.argsort(dim=-1)

    def _unshuffle(self, frame_tokens: Tensor, inverse: Tensor) -> Tensor:
        prefix = self.config.num_prefix_tokens
        dim = frame_tokens.shape[-1]
        patches = torch.gather(frame_tokens[:, :, prefix:], 2, inverse[..., None].expand(-1, -1, -1, dim))
        return torch.cat((frame_tokens[:, :, :prefix], patches), dim=2)

    # Task outputs ------------------------------------------------------------------------------
    def vtm_logits(self, output: AllInOneOutput) -> Tensor:
        """``(B, 2)`` video-text matching logits (index 1 = match)."""
        return self.vtm_head(output.pooled)

    def mlm_logits(self, output: AllInOneOutput) -> Tensor:
        """``(B, m, vocab)`` masked-language-model logits."""
        return self.mlm_head(output.text_tokens)

    def encode_text(self, text_ids: Tensor, text_mask: Tensor | None = None) -> Tensor:
        """Unimodal text embedding for dual-stream retrieval: ``(B, m) -> (B, vtc_dim)``, unit norm."""
        output = self.forward(text_ids=text_ids, text_mask=text_mask)
        return self.vtc_head.project_text(output.text_tokens[:, 0])

    def encode_video(self, video: Tensor) -> Tensor:
        """Unimodal video embedding: ``(B, S, C, H, W) -> (B, vtc_dim)``, unit norm (frame-averaged CLS)."""
        output = self.forward(video=video)
        return self.vtc_head.project_video(output.video_tokens[:, 0])

    def choice_scores(self, video: Tensor, choice_ids: Tensor, choice_mask: Tensor) -> Tensor:
        """Score every (video, candidate text) pair: ``video (B, S, C, H, W)``, ``choice_ids (B, K, m)`` ->
        ``(B, K)``, with the multiple-choice head if there is one, else the VTM "match" logit."""
        batch, choices, length = choice_ids.shape
        videos = video.repeat_interleave(choices, dim=0)
        out = self.forward(videos, choice_ids.reshape(-1, length), choice_mask.reshape(-1, length))
        scores = self.mc_head(out.pooled) if self.mc_head is not None else self.vtm_logits(out)[:, 1]
        return scores.view(batch, choices)

    def head_parameter_names(self) -> list[str]:
        """Names of the pre-training head parameters (VTM and MLM), excluded from Table 1 counts."""
        return [n for n, _ in self.named_parameters() if n.startswith(("vtm_head.", "mlm_head."))]


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """``(P, dim)``: sines of ``positions`` at ``dim / 2`` frequencies from 1 to 1/10000, then cosines."""
    if dim % 2:
        raise ValueError(f"sincos_1d: dim={dim} must be even")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(grid: int, dim: int) -> Tensor:
    """``(grid * grid, dim)`` for a row-major patch grid: half the channels encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"sincos_2d: dim={dim} must be a multiple of 4")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sincos_1d(rows.flatten(), dim // 2), sincos_1d(cols.flatten(), dim // 2)], dim=1)


def _init_module(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, PatchEmbed):
        # timm's ViT init: the patch projection as a Linear over flattened patches.
        weight = module.proj.weight
        trunc_normal_(weight.view(weight.shape[0], -1), std=0.02)
