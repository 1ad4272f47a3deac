/**
 * "Did you mean": the known name nearest to a mistyped one, for config options and CLI flags alike.
 */

/** Levenshtein distance between `a` and `b` (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The candidate nearest to `word` (case-insensitive), if one is near enough to be a typo: at most
 * 2 edits, or a quarter of its length for long words.
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  return candidates
    .map((name) => ({ name, distance: editDistance(lower, name) }))
    .filter(({ distance }) => distance <= Math.max(2, Math.floor(word.length / 4)))
    .sort((a, b) => a.distance - b.distance)[0]?.name;
}
