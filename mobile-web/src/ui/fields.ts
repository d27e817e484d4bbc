/** Field keys (`<department>/<item>.<part>`) in words a person reads. */
import type { Template } from '../api/types';
import { DEPARTMENTS_ZH } from './labels';

const HEADER: Record<string, string> = {
  mine_name: '矿山名称',
  licence_no: '许可证号',
  disposition: '处置方式',
  round_no: '验收次数',
};

export function fieldLabel(template: Template | null, field: string): string {
  const slash = field.indexOf('/');
  if (slash < 0) return HEADER[field] ?? field;
  const dept = field.slice(0, slash);
  const rest = field.slice(slash + 1);
  const m = /^(\d+)\.([a-z][a-z0-9_]*)(\.design)?$/.exec(rest);
  const unit = DEPARTMENTS_ZH[dept] ?? dept;
  if (!m) return `${unit} · ${rest}`;
  const number = Number(m[1]);
  const key = m[2] ?? '';
  const item = template?.sections.find((s) => s.department === dept)?.items.find((i) => i.number === number);
  let part: string;
  if (key === 'remark') part = '备注';
  else if (key === 'rectification') part = '整改要求';
  else if (key === 'photos') part = '照片';
  else part = item?.parts.find((p) => p.key === key)?.label ?? (key === 'result' ? '结果' : key);
  if (m[3]) part = `${part}（设计值）`;
  return item ? `${unit} 第${number}项「${item.title}」· ${part}` : `${unit} 第${number}项 · ${part}`;
}
