"""Freeway runs at 100k: eval return beside AAT's agreement and y's shift invariance (90k-100k means)."""
import glob
import pandas as pd
rows = []
for d in sorted(glob.glob('results/minatar/single/*/freeway_seed*')
                + glob.glob('results/minatar/switches/freeway/*/freeway_seed*')):
    m, e = pd.read_csv(d + '/metrics.csv'), pd.read_csv(d + '/eval.csv')
    w = m[m.step > 90000]
    rows.append(dict(run='/'.join(d.split('/')[-2:]), return_100k=e.return_mean.iloc[-1],
                     agreement=round(-w.cos_pr.mean(), 3), y_shift_cos=round(w.y_shift_cos.mean(), 3),
                     q_mean=round(w.q_mean.mean(), 3)))
df = pd.DataFrame(rows)
df.to_csv('results/minatar/switches/freeway/representation_100k.csv', index=False)
print(df.to_string(index=False))
