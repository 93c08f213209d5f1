"""check_export_files.py EXPORT_DIR MODEL_DIR - by-hand check of an `ailora export` of a real run,
numpy only (no torch): merged = residual + s B A, original + s' B' A' = merged (max error relative
to max |W|; one bf16 rounding of a model file is 2^-8 = 0.0039), every other tensor unchanged.
"""
import json, struct, sys, numpy as np
def st(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n]); out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']; raw = b[8+n+s:8+n+e]
        if v['dtype'] == 'BF16':
            a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, {'F32': np.float32, 'F16': np.float16}[v['dtype']])
        out[k] = a.reshape(v['shape']).astype(np.float64)
    return out
D, M = sys.argv[1], sys.argv[2]
orig, res, mer = st(M + '/model.safetensors'), st(D + '/residual/model.safetensors'), st(D + '/merged/model.safetensors')
ad, lo = st(D + '/adapter/adapter_model.safetensors'), st(D + '/lora_for_original/adapter_model.safetensors')
ca, cl = json.load(open(D + '/adapter/adapter_config.json')), json.load(open(D + '/lora_for_original/adapter_config.json'))
s, s2 = ca['lora_alpha'] / ca['r'], cl['lora_alpha'] / cl['r']
worst = {'merged-(res+sBA)': 0, 'orig+lora_for_original-merged': 0, 'untouched equal': 0}
for name in orig:
    if 'q_proj' not in name and 'v_proj' not in name:
        worst['untouched equal'] = max(worst['untouched equal'], np.abs(orig[name] - mer[name]).max()); continue
    p = 'base_model.model.' + name[:-len('.weight')]
    A, B = ad[p + '.lora_A.weight'], ad[p + '.lora_B.weight']
    A2, B2 = lo[p + '.lora_A.weight'], lo[p + '.lora_B.weight']
    scale = np.abs(mer[name]).max()
    worst['merged-(res+sBA)'] = max(worst['merged-(res+sBA)'], np.abs(mer[name] - (res[name] + s * B @ A)).max() / scale)
    worst['orig+lora_for_original-merged'] = max(worst['orig+lora_for_original-merged'], np.abs(orig[name] + s2 * B2 @ A2 - mer[name]).max() / scale)
print('scale s', s, "s'", s2, 'r', ca['r'], cl['r'], {k: float(v) for k, v in worst.items()})
