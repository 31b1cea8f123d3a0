#!/usr/bin/awk -f
# histdiff.awk BEFORE AFTER: the mean and count of every histogram series
# (its _sum and _count) between two scrapes of a /metrics page, for the
# series that moved; seconds shown in ms. scripts/bench-tier.sh -P saves
# the scrapes (leader-metrics0.txt, leader-metrics.txt).
#   awk -f scripts/histdiff.awk leader-metrics0.txt leader-metrics.txt
FNR == NR { if ($1 ~ /_(sum|count)(\{|$)/) before[$1] = $2; next }
$1 ~ /_sum(\{|$)/ { sum[$1] = $2 - before[$1] }
$1 ~ /_count(\{|$)/ { cnt[$1] = $2 - before[$1] }
END {
  for (k in cnt) {
    if (cnt[k] <= 0) continue
    s = k; sub(/_count/, "_sum", s)
    mean = sum[s] / cnt[k]
    unit = ""
    if (k ~ /_seconds_count/) { mean *= 1000; unit = " ms" }
    name = k; sub(/_count/, "", name)
    printf "%-90s n=%-8d mean=%.3f%s\n", name, cnt[k], mean, unit
  }
}
