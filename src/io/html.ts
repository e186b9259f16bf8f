// Text into HTML: the reports p3s writes (demo, eval) are static pages opened from disk.

/** `s` safe inside HTML text and double-quoted attributes. */
export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
