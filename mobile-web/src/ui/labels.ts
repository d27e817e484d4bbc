/** Chinese words for the codes the server and the protocol send. */

export const STAGES: Record<string, string> = {
  registered: '已登记',
  disposition_proposed: '处置意见已提出',
  disposition_approved: '处置已批准',
  closure_decided: '已下达关闭决定',
  plan_compiled: '已编制生态修复方案',
  preliminary_passed: '初验通过',
  rectification_required: '限期整改',
  acceptance_passed: '验收通过',
  joint_review_passed: '联审联批通过',
  licence_extended: '已办理延续',
  announced: '已发布注销公告',
  right_abandoned: '视为自动放弃矿权',
  cancellation_applied: '已申请注销',
  licence_cancelled: '采矿许可证已注销',
  protected: '保持原始地貌',
};

export const DISPOSITIONS: Record<string, string> = {
  cancel: '注销',
  continue: '延续',
  never_produced: '未生产',
};

export const DEPARTMENTS_ZH: Record<string, string> = {
  natural_resources: '自然资源局',
  emergency_management: '应急管理局',
  ecology_environment: '生态环境局',
  water_resources: '水利局',
  forestry: '林业局',
  agriculture_rural: '农业农村局',
  industry_it: '工信局',
  transport: '交通运输局',
  power_supply: '供电公司',
  public_security: '公安局',
  township: '乡镇/林场',
};

export const METHODS: Record<string, string> = {
  check_records: '查资料',
  site_inspection: '现场查看',
  measurement: '实测',
};

export const OUTCOMES: Record<string, string> = {
  pass: '达标',
  fail: '不达标',
  not_applicable: '不涉及',
};

export const ROLES: Record<string, string> = {
  admin: '管理员',
  county_office: '县整治办',
  department_inspector: '部门验收人员',
  township_officer: '乡镇（林场）',
  expert: '专家',
  operator: '采矿权人',
};

/** Why the server refused an op (PROTOCOL.md §6 result codes). */
export const REJECT_CODES: Record<string, string> = {
  invalid_op: '数据格式不正确',
  unknown_entity: '记录不存在',
  entity_exists: '记录已存在',
  entity_tombstoned: '记录已被删除',
  section_signed: '该部分已签字，修改未被接受',
  already_signed: '已经签过字（同一内容不能重复签字）',
  hash_mismatch: '签字时看到的内容已被他人修改，签字未被接受',
  section_conflicted: '该部分有未解决的冲突',
  conflict_unresolved: '此项有冲突，需先解决',
  stale_resolve: '解决冲突时出现了新的值，请重新查看',
  no_conflict: '此项已没有冲突',
  unknown_candidate: '所选的值不在冲突候选中',
  invalid_base_rev: '版本号无效',
  field_kind_mismatch: '字段类型不符',
  wrong_device: '设备不符',
  seq_reused: '操作序号已被使用（可能从旧备份恢复）',
  unknown_field: '不是验收表中的项目',
  forbidden: '无权进行此操作（不是本人的签字，或不在专家组名单中）',
  invalid_signature: '签名无法验证（设备密钥不符、签字人不符或内容被改动），请重新登录后再签字',
  incomplete_section: '本部分还有必填项未填写，不能签字',
  not_signed: '该部分尚未签字（或签字已撤回），无可撤回',
  strokes_missing: '服务器没有收到手写笔迹，签字未被接受。请联网后重新签字',
  letter_issued: '意见书已出具，不能再签字或拒签',
};

export const SPECIALTIES: Record<string, string> = {
  hydro_engineering_environmental_geology: '水工环',
  environmental_protection: '环境保护',
  forestry: '林业',
};

/** The letter's conclusion (§15 `letter/conclusion`). */
export const LETTER_CONCLUSIONS: Record<string, string> = {
  pass: '同意通过',
  pass_after_rectification: '限期整改后通过',
  fail: '不予通过',
};

/** Where an opinion letter stands for the signed-in expert. */
export const LETTER_STATUS: Record<string, string> = {
  review: '待审阅',
  signed: '已签字',
  declined: '已拒签',
  issued: '已出具',
  resign: '已修改待重签',
};

export function label(map: Record<string, string>, code: string | null | undefined): string {
  if (!code) return '—';
  return map[code] ?? code;
}

export function formatTime(ms: number): string {
  return new Date(ms).toLocaleString('zh-CN', { hour12: false });
}

/** How a field value reads in the UI. */
export function formatValue(v: unknown): string {
  if (v === null || v === undefined || v === '') return '（空）';
  if (typeof v === 'string') return OUTCOMES[v] ?? v;
  return JSON.stringify(v);
}
