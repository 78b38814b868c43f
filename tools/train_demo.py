#!/usr/bin/env python3
"""Train the vit-infer demo model: a small timm ViT on a synthetic "coloured shapes" data set.

Needs torch + timm + pillow + safetensors (+ huggingface_hub, which timm's save_for_hf asserts);
run with /work/venv-tools/bin/python tools/train_demo.py [--out models/demo]. CPU only, 1 torch
thread by default (on a busy 2-core box 2 threads ran 3.5-7x slower than 1: spin-waiting against the
other jobs) plus 1 generator process that renders the next epoch's FRESH images while the current
epoch trains; about 20-25 minutes on a loaded 2-core machine. Everything is seeded: each image comes
from np.random.default_rng([split_seed, index]), independent of generation order and worker count;
training uses fixed torch seeds. --verify reloads the saved model and rechecks every stored logit.

Writes (under --out, default models/demo):
  model.safetensors, config.json     timm.models.save_for_hf layout (architecture, model_args,
                                     label_names, pretrained_cfg with the eval preprocessing)
  samples/sample_XX.{png,jpg}        8 README demo images + samples/expected.json
  heldout/heldout_XXX.png            300 held-out images + heldout/timm_predictions.json
                                     (timm logits / top-5 computed from the PNG files as saved)
Image data layout: RGB uint8 PNG/JPEG of random size (48..96 x 48..96), model input [B, 3, 64, 64]
fp32 after timm's eval transform (bicubic resize shorter side to 73, center crop 64, (x/255-0.5)/0.5).
"""
import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# ---------------------------------------------------------------------------------------------
# Synthetic data. Classes are shape x colour combinations chosen so that neither the colour nor
# the shape alone identifies the class (red circle vs red square vs blue circle, ...).
# ---------------------------------------------------------------------------------------------
COLOURS = {
    'red': (215, 35, 35),
    'blue': (35, 75, 220),
    'green': (35, 165, 55),
    'yellow': (235, 210, 30),
    'purple': (135, 50, 185),
    'orange': (245, 135, 20),
}
CLASSES = [
    ('red', 'circle'), ('red', 'square'), ('blue', 'circle'), ('blue', 'triangle'),
    ('green', 'triangle'), ('green', 'square'), ('yellow', 'star'), ('yellow', 'circle'),
    ('purple', 'square'), ('orange', 'star'),
]
LABEL_NAMES = [f'{c} {s}' for c, s in CLASSES]
SHAPES = ('circle', 'square', 'triangle', 'star', 'cross', 'hexagon')

# Split seeds: images of different splits never share an rng stream.
SEED_TRAIN, SEED_VAL, SEED_HELDOUT, SEED_SAMPLES = 1001, 2002, 3003, 4004
SS = 4  # supersampling factor for anti-aliased shapes


def shape_points(shape, cx, cy, r, angle):
    """Polygon vertices (supersampled pixel coords) of a regular shape of circumradius r."""
    if shape == 'square':
        n, radii = 4, [r]
    elif shape == 'triangle':
        n, radii = 3, [r]
    elif shape == 'hexagon':
        n, radii = 6, [r]
    elif shape == 'star':
        n, radii = 10, [r, r * 0.45]
    elif shape == 'cross':
        # plus sign: 12 vertices, arm half-width w
        w = r * 0.33
        base = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
                (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        ca, sa = math.cos(angle), math.sin(angle)
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in base]
    else:
        raise ValueError(shape)
    pts = []
    for i in range(n):
        a = angle + 2 * math.pi * i / n
        rr = radii[i % len(radii)]
        pts.append((cx + rr * math.sin(a), cy - rr * math.cos(a)))
    return pts


def draw_shape(draw, shape, cx, cy, r, angle, fill=None, outline=None, width=1, ell=1.0):
    if shape == 'circle':
        rx, ry = r, r * ell
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill, outline=outline, width=width)
    else:
        pts = shape_points(shape, cx, cy, r, angle)
        if outline is not None and fill is None:
            draw.line(pts + [pts[0]], fill=outline, width=width, joint='curve')
        else:
            draw.polygon(pts, fill=fill)


def jitter_colour(rng, rgb, amount):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def render(seed, index, label):
    """Render one image of class `label`; fully determined by (seed, index)."""
    rng = np.random.default_rng([seed, index])
    w, h = int(rng.integers(48, 97)), int(rng.integers(48, 97))
    m = min(w, h)

    # Background: linear gradient between two muted colours at a random angle + smooth blobs.
    c0 = rng.uniform(60, 200, 3)
    c1 = rng.uniform(60, 200, 3)
    # pull towards grey so backgrounds are less saturated than the class colours
    grey0, grey1 = c0.mean(), c1.mean()
    c0 = 0.45 * c0 + 0.55 * grey0
    c1 = 0.45 * c1 + 0.55 * grey1
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx - w / 2) * math.cos(theta) + (yy - h / 2) * math.sin(theta)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    bg = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    # low-frequency noise: upsampled coarse grid
    coarse = rng.normal(0, 14, (4, 4, 3)).astype(np.float32)
    coarse_img = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    bg = bg + (np.asarray(coarse_img, np.float32) - 128)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))

    # Supersampled overlay for anti-aliased distractors and the main shape.
    layer = Image.new('RGBA', (w * SS, h * SS), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)

    # Distractors: 1-px lines and small 1-px outlined shapes in any colour (including class
    # colours), always much smaller / thinner than the main object (at most 0.10 x the shorter
    # side vs >= 0.25 for the main shape), so the class object is unambiguous to a human.
    for _ in range(int(rng.integers(0, 4))):
        col = tuple(int(v) for v in rng.integers(0, 256, 3)) + (int(rng.integers(120, 230)),)
        if rng.random() < 0.5:
            xa, ya = rng.uniform(0, w * SS, 2), rng.uniform(0, h * SS, 2)
            d.line([(xa[0], ya[0]), (xa[1], ya[1])], fill=col, width=SS)
        else:
            sh = SHAPES[int(rng.integers(len(SHAPES)))]
            r = rng.uniform(0.05, 0.10) * m * SS
            cx, cy = rng.uniform(0, w * SS), rng.uniform(0, h * SS)
            draw_shape(d, sh, cx, cy, r, rng.uniform(0, 2 * math.pi), outline=col, width=SS)

    # Main object: entirely inside the window that timm's eval transform keeps (a centred square of
    # side crop_pct * shorter side), so that cropping never turns a circle into a "square".
    colour, shape = CLASSES[label]
    col = jitter_colour(rng, COLOURS[colour], 18) + (255,)
    half_window = 0.5 * DATA_CFG['crop_pct'] * m
    # Circumradius >= 0.25 x the shorter side (>= 18 px after the resize to 73): smaller circles
    # and rotated squares became ambiguous on the 8x8 patch grid (v1 used 0.20-0.32 and plateaued
    # at ~90 % on red circle vs red square / green triangle vs green square).
    r = rng.uniform(0.25, 0.34) * m
    slack = max(half_window - r - 0.03 * m, 0.0)
    cx = (w / 2 + rng.uniform(-slack, slack)) * SS
    cy = (h / 2 + rng.uniform(-slack, slack)) * SS
    draw_shape(d, shape, cx, cy, r * SS, rng.uniform(0, 2 * math.pi), fill=col, ell=rng.uniform(0.94, 1.0))

    layer = layer.resize((w, h), Image.BOX)
    img = Image.alpha_composite(img.convert('RGBA'), layer).convert('RGB')
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))

    # Sparse pixel noise on ~10% of the pixels (dense noise would make the PNGs 2-3x larger).
    arr = np.asarray(img, np.int16) + rng.integers(-5, 6, (h, w, 3)) * (rng.random((h, w, 1)) < 0.10)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def balanced_labels(seed, n):
    """n labels, as balanced as possible over the classes, in a seeded random order."""
    rng = np.random.default_rng([seed, 999_999_999])
    return rng.permutation(np.arange(n) % len(CLASSES)).tolist()


def epoch_labels(seed, epoch, n):
    """Balanced labels of training epoch `epoch` (its images are indices epoch*n .. epoch*n+n-1)."""
    rng = np.random.default_rng([seed, 999_999_999, epoch])
    return rng.permutation(np.arange(n) % len(CLASSES)).tolist()


# Image generation runs in a worker process (overlapping with training) and returns the images
# AFTER the PIL half of timm's eval transform (bicubic resize + center crop) as uint8
# [N, 64, 64, 3]; ToTensor + Normalize on those bytes, (u8 / 255 - 0.5) / 0.5, reproduces
# tf(image) bit for bit, and uint8 is 4x smaller than fp32 to ship between processes.
_WORKER_PIL_TF = None


def _worker_init(data_cfg):
    global _WORKER_PIL_TF
    import timm.data
    tf = timm.data.create_transform(**data_cfg, is_training=False)
    _WORKER_PIL_TF = tf.transforms[:2]  # Resize(73, bicubic), CenterCrop(64)


def _pil_crop(tfs, im):
    for t in tfs:
        im = t(im)
    return np.asarray(im, np.uint8)


def gen_chunk(seed, start, labels):
    """uint8 [len(labels), 64, 64, 3] crops of render(seed, start + i, labels[i])."""
    return np.stack([_pil_crop(_WORKER_PIL_TF, render(seed, start + i, lab)) for i, lab in enumerate(labels)])


def crops_to_input(u8):
    """uint8 [N, 64, 64, 3] -> fp32 [N, 3, 64, 64] exactly as MaybeToTensor + Normalize(0.5, 0.5)."""
    import torch
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)


# ---------------------------------------------------------------------------------------------
# Model / preprocessing
# ---------------------------------------------------------------------------------------------
ARCH = 'vit_tiny_patch16_224'
MODEL_ARGS = dict(img_size=64, patch_size=8, embed_dim=96, depth=4, num_heads=3, mlp_ratio=4.0,
                  num_classes=len(CLASSES), global_pool='token')
DATA_CFG = dict(input_size=(3, 64, 64), interpolation='bicubic', crop_pct=0.875, crop_mode='center',
                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def create_model():
    import timm
    return timm.create_model(ARCH, pretrained=False, **MODEL_ARGS)


def eval_transform(model):
    """timm's own eval pipeline, resolved from the model's pretrained_cfg + DATA_CFG overrides."""
    import timm.data
    cfg = timm.data.resolve_data_config(args=dict(DATA_CFG), model=model)
    return timm.data.create_transform(**cfg, is_training=False), cfg


def to_tensor_batch(images, tf):
    import torch
    return torch.stack([tf(im) for im in images])


def load_saved(out):
    """Reload exactly as a user would: config.json -> create_model(arch, **model_args) -> weights."""
    import timm
    import timm.data
    from safetensors.torch import load_file
    cfg = json.loads((out / 'config.json').read_text())
    assert 'model_args' in cfg, 'config.json lacks model_args'
    model = timm.create_model(cfg['architecture'], pretrained=False, **cfg['model_args'])
    model.load_state_dict(load_file(str(out / 'model.safetensors')))
    model.eval()
    data_cfg = timm.data.resolve_data_config(model=model, args=dict(cfg['pretrained_cfg']))
    tf = timm.data.create_transform(**data_cfg, is_training=False)
    return cfg, model, data_cfg, tf


def verify(out):
    """Recompute every stored prediction from the files on disk and compare."""
    import torch
    cfg, model, data_cfg, tf = load_saved(out)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"reloaded {cfg['architecture']} {cfg['model_args']}: {n_params:,} params, "
          f"{os.path.getsize(out / 'model.safetensors') / 1e6:.2f} MB; data config {data_cfg}")
    ok = True
    for rel, key in (('heldout/timm_predictions.json', 'entries'), ('samples/expected.json', None)):
        doc = json.loads((out / rel).read_text())
        entries = doc[key] if key else doc
        with torch.no_grad():
            x = torch.stack([tf(Image.open(out / Path(rel).parent / e['file']).convert('RGB')) for e in entries])
            logits = model(x)  # [B, C] fp32
        ref = torch.tensor([e['logits'] for e in entries])
        diff = (logits - ref).abs().max().item()
        same_pred = all(int(logits[i].argmax()) == e['pred'] for i, e in enumerate(entries))
        same_top5 = all([int(v) for v in logits[i].topk(5).indices] == e['top5'] for i, e in enumerate(entries))
        acc = sum(int(logits[i].argmax()) == e['label'] for i, e in enumerate(entries)) / len(entries)
        # Same torch build + same files -> the logits should agree to float rounding (1e-5 absolute
        # allows a different BLAS code path, e.g. another thread count).
        good = diff < 1e-4 and same_pred and same_top5
        ok &= good
        print(f'{rel}: {len(entries)} images, accuracy {acc * 100:.2f}%, max |logit diff| {diff:.2e}, '
              f'argmax {"same" if same_pred else "DIFFERENT"}, top5 {"same" if same_top5 else "DIFFERENT"}')
    print('VERIFY', 'OK' if ok else 'FAILED')
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(Path(__file__).resolve().parent.parent / 'models' / 'demo'))
    ap.add_argument('--train-size', type=int, default=12000, help='FRESH training images per epoch')
    ap.add_argument('--val-size', type=int, default=1000)
    ap.add_argument('--heldout-size', type=int, default=300)
    ap.add_argument('--epochs', type=int, default=16)
    ap.add_argument('--warmup-epochs', type=float, default=1.0)
    ap.add_argument('--workers', type=int, default=1, help='image generator processes (results do not depend on it)')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--smoothing', type=float, default=0.1, help='label smoothing')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--verify', action='store_true',
                    help='only reload OUT with timm and check heldout/timm_predictions.json and '
                         'samples/expected.json reproduce (writes nothing)')
    ap.add_argument('--skip-train', action='store_true',
                    help='reuse OUT/model.safetensors; only rewrite samples/heldout/predictions')
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    import timm
    from timm.models import save_for_hf

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    if args.verify:
        return verify(out)
    out.mkdir(parents=True, exist_ok=True)

    model = create_model()
    tf, data_cfg = eval_transform(model)
    print('timm', timm.__version__, 'torch', torch.__version__)
    print('data config:', data_cfg)
    print('eval transform:', tf)
    n_params = sum(p.numel() for p in model.parameters())
    print(f'model {ARCH} {MODEL_ARGS}: {n_params:,} params')

    t_start = time.time()
    if not args.skip_train:
        # Training inputs go through the same timm eval transform (resize + center crop + normalize)
        # as evaluation. Every epoch sees FRESH images (epoch e uses generator indices
        # e*train_size ..), so the data-hungry ViT never revisits an image; the only augmentation
        # is a random horizontal flip. A worker renders epoch e+1 while epoch e trains.
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        pool = ProcessPoolExecutor(args.workers, mp_context=mp.get_context('spawn'),
                                   initializer=_worker_init, initargs=(data_cfg,))
        chunk = 1000

        def submit_epoch(ep):
            labels = epoch_labels(SEED_TRAIN, ep, args.train_size)
            futs = [pool.submit(gen_chunk, SEED_TRAIN, ep * args.train_size + c, labels[c:c + chunk])
                    for c in range(0, args.train_size, chunk)]
            return futs, torch.tensor(labels)

        t0 = time.time()
        val_labels = balanced_labels(SEED_VAL, args.val_size)
        val_fut = pool.submit(gen_chunk, SEED_VAL, 0, val_labels)
        pending = submit_epoch(0)
        xv = crops_to_input(val_fut.result())
        yv = torch.tensor(val_labels)
        assert torch.equal(xv[0], tf(render(SEED_VAL, 0, val_labels[0]))), 'uint8 crop path != timm transform'
        print(f'generated {args.val_size} val images in {time.time() - t0:.1f}s', flush=True)

        steps_per_epoch = args.train_size // args.batch_size
        total = steps_per_epoch * args.epochs
        warmup = max(1, int(steps_per_epoch * args.warmup_epochs))
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            (no_decay if p.ndim <= 1 or name in ('pos_embed', 'cls_token') else decay).append(p)
        opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05},
                                 {'params': no_decay, 'weight_decay': 0.0}], lr=args.lr, betas=(0.9, 0.999))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else
            0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))
        g = torch.Generator().manual_seed(args.seed)

        def evaluate(x, y):
            model.eval()
            with torch.no_grad():
                pred = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
            model.train()
            return (pred == y).float().mean().item()

        t0 = time.time()
        model.train()
        t_wait = 0.0
        for ep in range(args.epochs):
            tw = time.time()
            futs, ys = pending
            xs = np.concatenate([f.result() for f in futs])  # [N, 64, 64, 3] uint8
            t_wait += time.time() - tw
            if ep + 1 < args.epochs:
                pending = submit_epoch(ep + 1)
            perm = torch.randperm(args.train_size, generator=g)
            tot_loss = 0.0
            for s in range(steps_per_epoch):
                idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
                x = crops_to_input(xs[idx.numpy()])
                flip = torch.rand(len(idx), generator=g) < 0.5
                x[flip] = x[flip].flip(-1)
                loss = F.cross_entropy(model(x), ys[idx], label_smoothing=args.smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                tot_loss += loss.item()
            print(f'epoch {ep + 1}/{args.epochs} loss {tot_loss / steps_per_epoch:.4f} '
                  f'val acc {evaluate(xv, yv) * 100:.2f}% ({time.time() - t0:.0f}s, waited {t_wait:.0f}s for data)', flush=True)
        train_time = time.time() - t0
        pool.shutdown()
        model.eval()
        save_for_hf(model, str(out), model_config=dict(label_names=LABEL_NAMES, pretrained_cfg=dict(tag='vitinfer_demo_shapes')),
                    safe_serialization=True, data_config=dict(DATA_CFG))
        print(f'training took {train_time:.1f}s; saved {out}/model.safetensors '
              f'({os.path.getsize(out / "model.safetensors") / 1e6:.2f} MB)')
    else:
        train_time = None

    # ---- Reload from disk so every stored prediction comes from the saved files.
    cfg, model, data_cfg, tf = load_saved(out)
    print('reloaded; eval data config:', data_cfg)

    def predict(paths):
        with torch.no_grad():
            x = torch.stack([tf(Image.open(p).convert('RGB')) for p in paths])  # [B, 3, 64, 64] fp32
            return model(x)  # [B, C] fp32

    # ---- Held-out set: write PNGs, then predict from the files as saved.
    hdir = out / 'heldout'
    hdir.mkdir(exist_ok=True)
    for old in hdir.glob('heldout_*.png'):
        old.unlink()
    h_labels = balanced_labels(SEED_HELDOUT, args.heldout_size)
    files = []
    for i, lab in enumerate(h_labels):
        name = f'heldout_{i:03d}.png'
        render(SEED_HELDOUT, i, lab).save(hdir / name, optimize=True)
        files.append(name)
    logits = predict([hdir / f for f in files])
    top5 = logits.topk(5, dim=1).indices
    pred = logits.argmax(1)
    acc = (pred == torch.tensor(h_labels)).float().mean().item()
    entries = [dict(file=f, label=lab, label_name=LABEL_NAMES[lab], pred=int(pred[i]),
                    top5=[int(v) for v in top5[i]], logits=[float(v) for v in logits[i]])
               for i, (f, lab) in enumerate(zip(files, h_labels))]
    preds_doc = dict(
        description='timm predictions for every held-out PNG: PIL decode -> timm eval transform -> '
                    'model.eval() fp32 (torch CPU)',
        timm_version=timm.__version__, torch_version=torch.__version__,
        architecture=cfg['architecture'], model_args=cfg['model_args'],
        data_config={k: list(v) if isinstance(v, tuple) else v for k, v in data_cfg.items()},
        label_names=LABEL_NAMES, num_images=len(files), accuracy=acc, entries=entries)
    (hdir / 'timm_predictions.json').write_text(json.dumps(preds_doc, indent=1) + '\n')
    hsize = sum(p.stat().st_size for p in hdir.iterdir())
    print(f'held-out accuracy {acc * 100:.2f}% on {len(files)} PNGs ({hsize / 1e6:.2f} MB folder)')

    # ---- README samples: 8 images, one per class for 8 distinct classes, PNG/JPEG mix.
    sdir = out / 'samples'
    sdir.mkdir(exist_ok=True)
    for old in sdir.glob('sample_*'):
        old.unlink()
    s_labels = np.random.default_rng([SEED_SAMPLES, 1]).permutation(len(CLASSES))[:8].tolist()
    samples = []
    for i, lab in enumerate(s_labels):
        im = render(SEED_SAMPLES, i, lab)
        if i % 2 == 0:
            name = f'sample_{i + 1:02d}.png'
            im.save(sdir / name)
        else:
            name = f'sample_{i + 1:02d}.jpg'
            im.save(sdir / name, quality=92, subsampling=0)  # 4:4:4 keeps the colours crisp
        samples.append((name, lab))
    slog = predict([sdir / n for n, _ in samples])
    sprob = slog.softmax(1)
    sdoc = [dict(file=n, label=lab, label_name=LABEL_NAMES[lab], pred=int(slog[i].argmax()),
                 pred_name=LABEL_NAMES[int(slog[i].argmax())], prob=float(sprob[i].max()),
                 top5=[int(v) for v in slog[i].topk(5).indices], logits=[float(v) for v in slog[i]])
            for i, (n, lab) in enumerate(samples)]
    (sdir / 'expected.json').write_text(json.dumps(sdoc, indent=1) + '\n')
    for e in sdoc:
        print(f"  {e['file']}: true '{e['label_name']}' -> '{e['pred_name']}' ({e['prob']:.3f})")
    print(f'total {time.time() - t_start:.0f}s' + (f', training {train_time:.0f}s' if train_time else ''))


if __name__ == '__main__':
    raise SystemExit(main())
