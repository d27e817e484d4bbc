/**
 * Shapes of the server's HTTP API (`/api/v1`) that the phone uses. Only the fields the app reads
 * are declared; the server may send more.
 */

export type Role =
  | 'admin'
  | 'county_office'
  | 'department_inspector'
  | 'township_officer'
  | 'expert'
  | 'operator';

export interface User {
  id: string;
  username: string;
  display_name: string;
  role: Role;
  department: string | null;
  township_id: string | null;
  specialty: string | null;
}

export interface Session {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
  user: User;
}

export interface Device {
  id: string;
  user_id: string;
  name: string;
  revoked_at: number | null;
}

export interface Department {
  code: string;
  name: string;
  observer: boolean;
  sort_order: number;
}

export interface Township {
  id: string;
  name: string;
  kind: string;
}

export interface MineFacts {
  stage: string;
  disposition: string | null;
  township_id: string;
}

export interface Mine {
  id: string;
  name: string;
  licence_no: string;
  holder: string;
  township_id: string;
  mineral: string;
  mining_method: string;
  area_ha: string | null;
  facts: MineFacts;
  updated_at: number;
}

export interface MineDeadline {
  key: string;
  title: string;
  due: string;
  status: 'overdue' | 'due_soon' | 'pending' | string;
  days_left: number;
}

export interface MineDetail extends Mine {
  deadlines: MineDeadline[];
}

export interface Round {
  id: string;
  mine_id: string;
  round_no: number;
  previous_round_id: string | null;
  template_ref: string;
  disposition: string;
  created_at: number;
}

/** The error body every failing API call answers with. */
export interface ErrorBody {
  error: { code: string; message: string; fields?: { field: string; message: string }[] };
}

// ───────────────────────── acceptance templates ─────────────────────────

export type NumberThreshold = { kind: 'value'; value: string } | { kind: 'design_value' };

export interface NumberRule {
  op: string;
  threshold: NumberThreshold;
}

export type AnswerKind =
  | { kind: 'pass_fail'; not_applicable_allowed: boolean }
  | { kind: 'number'; unit: string; rule: NumberRule | null }
  | { kind: 'text' };

export type AnswerPart = AnswerKind & { key: string; label: string | null };

export interface TemplateItem {
  number: number;
  title: string;
  criterion: string | null;
  /** 验收方式 with the server's words (查资料, 现场查看, 实测). */
  methods: { code: string; name: string }[];
  photo: string;
  applies_to: string[];
  note: string | null;
  parts: AnswerPart[];
}

export interface TemplateSection {
  department: string;
  name: string;
  required: boolean;
  applies_to: string[];
  items: TemplateItem[];
}

export interface Template {
  id: string;
  version: string;
  title: string;
  note: string | null;
  sections: TemplateSection[];
}
