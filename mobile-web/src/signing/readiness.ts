/**
 * Whether a section may be signed now, and if not why, in the person's words. Mirrors the
 * server (`TemplatePolicy::check_sign`, PROTOCOL.md §6 `sign`): every **deciding** answer of the
 * section's applicable items is there — a pass/fail part, a number with a rule (and its design
 * value when the rule compares with it) — unless a pass/fail part says 不涉及; text parts and
 * numbers without a rule never hold a signature back. A failing answer is a finding and may be
 * signed. A field in conflict means the section has no hash: nothing to sign.
 */
import type { Template, TemplateSection } from '../api/types';
import { conflictedField, sectionHash, type EntityState, type Value } from '../protocol';

export interface Readiness {
  /** The hash a signature would cover (`null` while a field is in conflict). */
  hash: string | null;
  /** Items (by number) whose deciding answers are missing. */
  missing: number[];
  /** The fields of the section in conflict. */
  conflicts: string[];
  /** Applicable items of the section, and the photos its items hold. */
  items: number;
  photos: number;
  ready: boolean;
}

function applies(list: readonly string[], disposition: string | null): boolean {
  return disposition === null || list.length === 0 || list.includes(disposition);
}

function present(v: Value | undefined): boolean {
  return v !== undefined && v !== null && v !== '';
}

/** The applicable items of `section` for a record of `disposition`. */
export function applicableItems(section: TemplateSection, disposition: string | null) {
  return applies(section.applies_to, disposition) ? section.items.filter((i) => applies(i.applies_to, disposition)) : [];
}

export function readiness(view: EntityState, template: Template, section: string): Readiness {
  const d = view.fields['disposition']?.value;
  const disposition = typeof d === 'string' ? d : null;
  const s = template.sections.find((x) => x.department === section);
  const value = (k: string) => view.fields[k]?.value;
  const missing: number[] = [];
  const items = s ? applicableItems(s, disposition) : [];
  for (const item of items) {
    const key = (part: string) => `${section}/${item.number}.${part}`;
    const notApplicable = item.parts.some((p) => p.kind === 'pass_fail' && value(key(p.key)) === 'not_applicable');
    if (notApplicable) continue;
    const incomplete = item.parts.some((p) => {
      if (p.kind === 'text' || (p.kind === 'number' && p.rule === null)) return false;
      if (!present(value(key(p.key)))) return true;
      return p.kind === 'number' && p.rule?.threshold.kind === 'design_value' && !present(value(`${key(p.key)}.design`));
    });
    if (incomplete) missing.push(item.number);
  }
  let photos = 0;
  for (const [k, set] of Object.entries(view.sets)) {
    if (k.startsWith(`${section}/`) && k.endsWith('.photos')) photos += Object.keys(set.elements).length;
  }
  const conflicts = Object.keys(view.fields).filter((k) => k.startsWith(`${section}/`) && view.fields[k]?.conflict);
  const hash = conflictedField(view, section) === null ? sectionHash(view, section) : null;
  return {
    hash,
    missing,
    conflicts,
    items: items.length,
    photos,
    ready: hash !== null && missing.length === 0 && conflicts.length === 0,
  };
}

/** Why the section cannot be signed yet, in Chinese (empty when it can). */
export function notReadyText(r: Readiness): string {
  const parts: string[] = [];
  if (r.conflicts.length > 0) parts.push(`有 ${r.conflicts.length} 项冲突未解决`);
  if (r.missing.length > 0) {
    const list = r.missing.length > 8 ? `${r.missing.slice(0, 8).join('、')} 等 ${r.missing.length} 项` : r.missing.join('、');
    parts.push(`第 ${list} 项还没有填写结论`);
  }
  return parts.length === 0 ? '' : `还不能签字：${parts.join('；')}。`;
}
