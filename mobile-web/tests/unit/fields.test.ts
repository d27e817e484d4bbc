/** Field keys read as the item they belong to (rejections and conflicts are shown this way). */
import { describe, expect, it } from 'vitest';
import type { Template } from '../../src/api/types';
import { fieldLabel } from '../../src/ui/fields';

const template: Template = {
  id: 't',
  version: '1',
  title: '验收表',
  note: null,
  sections: [
    {
      department: 'water_resources',
      name: '水利',
      required: true,
      applies_to: ['cancel'],
      items: [
        {
          number: 14,
          title: '截排水沟闭合、畅通、无淤堵',
          criterion: null,
          methods: [{ code: 'measurement', name: '实测' }],
          photo: 'required',
          applies_to: ['cancel'],
          note: null,
          parts: [
            { key: 'length', label: '截排水沟长度', kind: 'number', unit: '米', rule: null },
            { key: 'result', label: null, kind: 'pass_fail', not_applicable_allowed: false },
          ],
        },
      ],
    },
  ],
};

describe('fieldLabel', () => {
  it.each([
    ['water_resources/14.length', '水利局 第14项「截排水沟闭合、畅通、无淤堵」· 截排水沟长度'],
    ['water_resources/14.result', '水利局 第14项「截排水沟闭合、畅通、无淤堵」· 结果'],
    ['water_resources/14.remark', '水利局 第14项「截排水沟闭合、畅通、无淤堵」· 备注'],
    ['water_resources/14.photos', '水利局 第14项「截排水沟闭合、畅通、无淤堵」· 照片'],
    ['water_resources/14.rectification', '水利局 第14项「截排水沟闭合、畅通、无淤堵」· 整改要求'],
    ['water_resources/14.length.design', '水利局 第14项「截排水沟闭合、畅通、无淤堵」· 截排水沟长度（设计值）'],
    ['forestry/20.result', '林业局 第20项 · 结果'],
    ['mine_name', '矿山名称'],
  ])('%s reads %s', (field, words) => {
    expect(fieldLabel(template, field)).toBe(words);
  });

  it('without the template still names department and item', () => {
    expect(fieldLabel(null, 'water_resources/14.length')).toBe('水利局 第14项 · length');
  });
});
