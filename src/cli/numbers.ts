/**
 * The grammar of numbers, the same for flags, batch lines (whose JSON numbers are read as written)
 * and LoRA scales: an integer is decimal digits only — no sign, hex (`0x40`), exponent (`1e3`) or
 * fraction (`20.0`); a decimal is digits with an optional sign and fraction — no exponent, hex,
 * `Infinity` or `NaN`. Ranges are checked by each option.
 *
 * @module
 */

const INTEGER = /^\d+$/;
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)$/;

/** Whether `raw` is a decimal integer (digits only). */
export function isDecimalInteger(raw: string): boolean {
  return INTEGER.test(raw);
}

/** Whether `raw` is a decimal number (optional `-`, digits, optional fraction). */
export function isDecimal(raw: string): boolean {
  return DECIMAL.test(raw);
}
