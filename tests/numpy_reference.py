"""Plain numpy references for psrl_jax.transforms, psrl_jax.losses and the whole PSRL objective,
written from DESIGN.md and the poster (not from the JAX code).

These follow the "Loss and transform contract" text literally, with explicit loops where that keeps
the meaning obvious. They are independent of the JAX code on purpose: tests compare the two. All
computations run in float64; arrays are NHWC and flows have flow[..., 0] = dx (columns) and
flow[..., 1] = dy (rows), in pixels.
"""

import numpy as np

EPSILON = 1e-6


def displacements(r):
    """The (dx, dy) of channel k = (dy + r)(2r + 1) + (dx + r): [(2r+1)**2, 2]."""
    out = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out.append((dx, dy))
    return np.asarray(out, np.float64)


def correlation_volume(z_a, z_b, r):
    """V[b, y, x, k] = sum_c z_a[b, y, x, c] z_b[b, y + dy, x + dx, c] / C; outside z_b is zero.

    z_a, z_b: [B, H, W, C] -> [B, H, W, (2r+1)**2].
    """
    z_a = np.asarray(z_a, np.float64)
    z_b = np.asarray(z_b, np.float64)
    batch, height, width, channels = z_a.shape
    side = 2 * r + 1
    out = np.zeros((batch, height, width, side * side))
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        k = (dy + r) * side + (dx + r)
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < height and 0 <= xx < width:
                            out[b, y, x, k] = np.dot(z_a[b, y, x], z_b[b, yy, xx]) / channels
    return out


def flow_from_volume(volume, r, inverse_temperature=1.0, displacement_penalty=0.0, valid=None):
    """Soft-argmax: sum_k w_k (dx_k, dy_k), w = softmax over the valid k of beta V_k - alpha |d_k|^2.

    [B, H, W, (2r+1)**2] -> [B, H, W, 2]; valid: bool [(2r+1)**2] or None (all).
    """
    moves = displacements(r)
    logits = (inverse_temperature * np.asarray(volume, np.float64)
              - displacement_penalty * (moves ** 2).sum(axis=-1))
    if valid is not None:
        logits = np.where(valid, logits, -np.inf)
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ moves


def bilinear_sample(image, x, y):
    """Bilinear sample of one image [H, W, C] at the point (x, y); outside neighbours give zero."""
    height, width = image.shape[:2]
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    value = np.zeros(image.shape[2:], np.float64)
    for yy, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
        for xx, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
            if 0 <= yy < height and 0 <= xx < width:
                value += wy * wx * image[yy, xx]
    return value


def warp(image, flow):
    """out[b, y, x] = bilinear sample of image[b] at (x + dx, y + dy).

    image [B, H, W, C], flow [B, H, W, 2] -> [B, H, W, C].
    """
    image = np.asarray(image, np.float64)
    flow = np.asarray(flow, np.float64)
    out = np.zeros(image.shape)
    batch, height, width = image.shape[:3]
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                dx, dy = flow[b, y, x]
                out[b, y, x] = bilinear_sample(image[b], x + dx, y + dy)
    return out


def _linear_resize_matrix(n_in, n_out):
    """[n_out, n_in] weights of half-pixel-centred linear interpolation, clamped at the edges."""
    matrix = np.zeros((n_out, n_in))
    for i in range(n_out):
        u = (i + 0.5) * n_in / n_out - 0.5
        u = min(max(u, 0.0), n_in - 1.0)
        i0 = int(np.floor(u))
        i1 = min(i0 + 1, n_in - 1)
        f = u - i0
        matrix[i, i0] += 1.0 - f
        matrix[i, i1] += f
    return matrix


def upsample_flow(flow, height, width):
    """Half-pixel bilinear resize [B, h, w, 2] -> [B, height, width, 2], then dx *= width / w and
    dy *= height / h."""
    flow = np.asarray(flow, np.float64)
    _, h, w, _ = flow.shape
    rows = _linear_resize_matrix(h, height)
    cols = _linear_resize_matrix(w, width)
    out = np.einsum('Yy,byxc,Xx->bYXc', rows, flow, cols)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


def edge_pad(image, pad):
    """Replicate-pad one image [H, W, C] by `pad` on both spatial sides."""
    return np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode='edge')


def photometric_loss(image_a, image_b, flow):
    """mean_{H, W, C} |image_a - warp(image_b, flow)|  -> [B]."""
    diff = np.abs(np.asarray(image_a, np.float64) - warp(image_b, flow))
    return diff.reshape(diff.shape[0], -1).mean(axis=1)


def smoothness_loss(flow):
    """mean |flow[:, 1:] - flow[:, :-1]| + mean |flow[:, :, 1:] - flow[:, :, :-1]|  -> [B]."""
    flow = np.asarray(flow, np.float64)
    batch = flow.shape[0]
    rows = np.abs(flow[:, 1:] - flow[:, :-1]).reshape(batch, -1).mean(axis=1)
    cols = np.abs(flow[:, :, 1:] - flow[:, :, :-1]).reshape(batch, -1).mean(axis=1)
    return rows + cols


def reconstruction_loss(image_a, image_b, flow, smoothness_weight):
    """L_r = photometric(I_a, I_b, c) + w_reg * smoothness(c)  -> [B]."""
    return photometric_loss(image_a, image_b, flow) + smoothness_weight * smoothness_loss(flow)


def correspondence_terms(frames, external_flows, internal_flow, same_episode, smoothness_weight):
    """The masked external sum and internal term of L_c, each [B].

    frames [B, M+2, H, W, c]; external_flows [B, M+1, H, W, 2] with map i = c_{k+i+1 -> k+i},
    scored as L_r(I_{k+i+1}, I_{k+i}, flow_i) and masked by same_episode[:, i+1]; internal_flow
    [B, H, W, 2] = c_{k -> k+M}, scored as L_r(I_k, I_{k+M}, flow) and masked by
    same_episode[:, M], or None (zeros).
    """
    frames = np.asarray(frames, np.float64)
    mask = np.asarray(same_episode, np.float64)
    batch, num_external = external_flows.shape[:2]
    m = num_external - 1
    external = np.zeros(batch)
    for i in range(num_external):
        term = reconstruction_loss(frames[:, i + 1], frames[:, i], external_flows[:, i],
                                   smoothness_weight)
        external += mask[:, i + 1] * term
    internal = np.zeros(batch)
    if internal_flow is not None:
        internal = mask[:, m] * reconstruction_loss(frames[:, 0], frames[:, m], internal_flow,
                                                    smoothness_weight)
    return {'external': external, 'internal': internal}


def correspondence_loss(frames, external_flows, internal_flow, same_episode, smoothness_weight):
    """L_c = internal + external  -> [B]."""
    terms = correspondence_terms(frames, external_flows, internal_flow, same_episode,
                                 smoothness_weight)
    return terms['external'] + terms['internal']


def cosine_similarity_loss(y1, y2):
    """-<y1, y2> / (max(|y1|, eps) max(|y2|, eps)) over all non-batch axes  -> [B]."""
    y1 = np.asarray(y1, np.float64).reshape(len(y1), -1)
    y2 = np.asarray(y2, np.float64).reshape(len(y2), -1)
    out = np.zeros(len(y1))
    for b in range(len(y1)):
        n1 = max(np.sqrt(np.sum(y1[b] ** 2)), EPSILON)
        n2 = max(np.sqrt(np.sum(y2[b] ** 2)), EPSILON)
        out[b] = -np.dot(y1[b], y2[b]) / (n1 * n2)
    return out


def l1_loss(z1, z2):
    """mean |z1 - z2| over all non-batch axes  -> [B]."""
    diff = np.abs(np.asarray(z1, np.float64) - np.asarray(z2, np.float64))
    return diff.reshape(diff.shape[0], -1).mean(axis=1)


def paired_similarity_loss(y_tr, y_pr, y_t, z_tr, z_pr, z_t):
    """L_s(y_tr, y_t) + L_s(y_pr, y_t) + L1(z_tr, z_t) + L1(z_pr, z_t), None drops a term -> [B]."""
    total = 0.0
    for y in (y_tr, y_pr):
        if y is not None:
            total = total + cosine_similarity_loss(y, y_t)
    if z_t is not None:
        for z in (z_tr, z_pr):
            if z is not None:
                total = total + l1_loss(z, z_t)
    return total


# ------------------------------------------------------------------------------------------------
# The PSRL objective (psrl.psrl_objective) from the poster's definitions, on given features and
# flax parameter dicts ({'params': {...}}) read by layer name. Convolutions are flax's: kernels
# [kh, kw, in, out], 'SAME' zero padding, stride 1, cross-correlation plus bias.


def conv2d_same(x, layer):
    """x [B, H, W, Cin], layer {'kernel': [kh, kw, Cin, Cout], 'bias': [Cout]} -> [B, H, W, Cout]."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(layer['kernel'], np.float64)
    kh, kw = kernel.shape[:2]
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + kernel.shape[-1:])
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i:i + height, j:j + width] @ kernel[i, j]
    return out + np.asarray(layer['bias'], np.float64)


def dense(x, layer):
    """x [B, ...] flattened row-major -> [B, out] with layer {'kernel': [in, out], 'bias'}."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return x @ np.asarray(layer['kernel'], np.float64) + np.asarray(layer['bias'], np.float64)


def relu(x):
    return np.maximum(x, 0.0)


def standardize_channels(z):
    """Pearson normalisation over channels: (z - mean_c) / sqrt(mean_c (z - mean_c)^2 + 1e-6)."""
    z = np.asarray(z, np.float64)
    centred = z - z.mean(axis=-1, keepdims=True)
    return centred / np.sqrt(np.mean(centred ** 2, axis=-1, keepdims=True) + 1e-6)


def correspondence_module(params, z_a, z_b, r):
    """C(z_a, z_b) -> flow c_{a->b} [B, h, w, 2] in cells (networks.CorrespondenceModule).

    V = correlation volume of the channel-standardised features (zero outside z_b); at each cell the
    coarse flow is the soft-argmax of beta V_k - alpha |d_k|^2 over the displacements d_k that stay
    inside the map, beta = exp(log_inverse_temperature), alpha = exp(log_displacement_penalty);
    then flow = coarse + conv3x3(relu(conv3x3(relu(conv3x3([V, coarse]))))).
    """
    p = params['params']
    volume = correlation_volume(standardize_channels(z_a), standardize_channels(z_b), r)
    beta = np.exp(float(p['log_inverse_temperature']))
    alpha = np.exp(float(p['log_displacement_penalty']))
    moves = displacements(r)
    batch, height, width = volume.shape[:3]
    coarse = np.zeros((batch, height, width, 2))
    for y in range(height):
        for x in range(width):
            inside = np.array([0 <= y + dy < height and 0 <= x + dx < width for dx, dy in moves])
            logits = beta * volume[:, y, x] - alpha * (moves ** 2).sum(axis=1)
            logits = np.where(inside, logits, -np.inf)
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
            coarse[:, y, x] = (weights / weights.sum(axis=1, keepdims=True)) @ moves
    hidden = relu(conv2d_same(np.concatenate([volume, coarse], axis=-1), p['Conv_0']))
    hidden = relu(conv2d_same(hidden, p['Conv_1']))
    return coarse + conv2d_same(hidden, p['Conv_2'])


def transition_model(params, z, action, num_actions):
    """G(Z, a) [B, h, w, C]: the action (one-hot of an int [B], or a vector [B, A]) as constant
    planes after Z's channels, then conv3x3-relu-conv3x3-relu-conv3x3."""
    p = params['params']
    action = np.asarray(action)
    if num_actions is not None:
        action = np.eye(num_actions)[action]
    planes = np.broadcast_to(action[:, None, None, :], z.shape[:3] + action.shape[-1:])
    hidden = relu(conv2d_same(np.concatenate([z, planes], axis=-1), p['Conv_0']))
    hidden = relu(conv2d_same(hidden, p['Conv_1']))
    return conv2d_same(hidden, p['Conv_2'])


def psrl_objective(online, target, query, target_features, frames, actions, same_episode, config):
    """PSRL's per-example loss lambda_sim L_sim + lambda_c L_c -> ([B], {term: [B]}).

    online / target: parameter dicts per module ('correspondence', 'conv1x1', 'projection',
    'predictor', 'transition'); target supplies conv1x1^t and psi^t. query [B, M+1, h, w, C] =
    z^q_k .. z^q_{k+M}; target_features [B, T-1, h, w, C] = z^t_{k+1} .. z^t_{k+T-1}; frames
    [B, T, H, W, c] = I_k .. I_{k+T-1}; actions [B, T-1] (int) or [B, T-1, A]; same_episode bool
    [B, T]; config: a psrl.PSRLConfig (read as data: switches, weights, r, M + 1, S).
    Terms: 'external' sum_i L_r(c^ext_{k+i+1->k+i}), 'internal' L_r(c^int_{k->k+M}) (masked as
    correspondence_terms), and 'cos_tr', 'cos_pr', 'l1_tr', 'l1_pr' averaged over j = 1..S with
    step j zeroed where o_{k+j} left o_k's episode.
    """
    mask = np.asarray(same_episode, np.float64)
    batch = len(mask)
    height, width = frames.shape[2:4]
    r, horizon, steps = config.max_displacement, config.horizon, config.sim_steps
    flow = lambda a, b: correspondence_module(online['correspondence'], a, b, r)
    if config.correspondence or config.cat:   # c^ext_{k+i+1->k+i} = C(z^t_{k+i+1}, z^q_{k+i})
        external = [flow(target_features[:, i], query[:, i]) for i in range(horizon)]
    terms = {}
    if config.correspondence:
        pixels = lambda f: upsample_flow(f, height, width)
        internal = pixels(flow(query[:, 0], query[:, horizon - 1])) if config.internal else None
        terms.update(correspondence_terms(frames[:, :horizon + 1], np.stack(
            [pixels(f) for f in external], axis=1), internal, mask[:, :horizon + 1],
            config.smoothness_weight))
    if config.cat or config.aat:
        conv1x1 = lambda params, z: conv2d_same(z, params['params']['Conv_0'])
        psi = lambda params, z: dense(z, params['params']['Dense_0'])
        predict = lambda z: psi(online['predictor'], psi(online['projection'], z))
        z_pr = conv1x1(online['conv1x1'], query[:, 0])
        sums = {}
        for j in range(1, steps + 1):
            z_t = conv1x1(target['conv1x1'], target_features[:, j - 1])      # Z^t_{k+j}
            y_t = psi(target['projection'], z_t)
            step = {}
            if config.cat:
                z_tr = warp(conv1x1(online['conv1x1'], query[:, j - 1]), external[j - 1])
                step['cos_tr'] = cosine_similarity_loss(predict(z_tr), y_t)
                if config.l1:
                    step['l1_tr'] = l1_loss(z_tr, z_t)
            if config.aat:
                z_pr = transition_model(online['transition'], z_pr, actions[:, j - 1],
                                        config.num_actions)
                step['cos_pr'] = cosine_similarity_loss(predict(z_pr), y_t)
                if config.l1:
                    step['l1_pr'] = l1_loss(z_pr, z_t)
            for name, value in step.items():
                sums[name] = sums.get(name, 0.0) + mask[:, j] * value
        terms.update({name: value / steps for name, value in sums.items()})
    loss_c = terms.get('external', np.zeros(batch)) + terms.get('internal', np.zeros(batch))
    loss_sim = sum((terms[k] for k in ('cos_tr', 'cos_pr', 'l1_tr', 'l1_pr') if k in terms),
                   np.zeros(batch))
    return config.lambda_sim * loss_sim + config.lambda_c * loss_c, terms
