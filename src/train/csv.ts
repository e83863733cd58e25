/** CSV as RFC 4180 writes it: fields with a comma, quote or line break are quoted, quotes doubled. */
export function csvField(value: string | number | boolean | undefined | null): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'number' && !Number.isInteger(value) ? formatNumber(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Numbers in CSV and tables: up to 6 significant decimals, no exponent for ordinary values. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return String(Number(value.toFixed(6)));
}

export function csvLine(fields: (string | number | boolean | undefined | null)[]): string {
  return fields.map(csvField).join(',') + '\n';
}

export function csvText(header: string[], rows: (string | number | boolean | undefined | null)[][]): string {
  return csvLine(header) + rows.map(csvLine).join('');
}
