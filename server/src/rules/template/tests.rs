#![allow(clippy::unwrap_used)]

use super::*;
use crate::rules::datafile::DataErrorKind;

fn default() -> Template {
    Template::default_2023().unwrap_or_else(|e| panic!("{e}"))
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn d(v: &str) -> Decimal {
    v.parse().unwrap()
}

// ----- the default template -----------------------------------------------------------------

#[test]
fn default_template_has_all_28_items_in_11_sections() {
    let t = default();
    assert_eq!(t.reference(), "shanggao-2023@2023.1");
    assert_eq!(t.sections.len(), 11);
    let numbers: Vec<u32> = t.items().map(|(_, i)| i.number).collect();
    assert_eq!(numbers, (1..=28).collect::<Vec<_>>());
    let per_section: Vec<(Department, usize)> = t
        .sections
        .iter()
        .map(|s| (s.department, s.items.len()))
        .collect();
    assert_eq!(
        per_section,
        vec![
            (Department::NaturalResources, 6),
            (Department::EmergencyManagement, 4),
            (Department::EcologyEnvironment, 3),
            (Department::WaterResources, 4),
            (Department::Forestry, 5),
            (Department::AgricultureRural, 1),
            (Department::IndustryIt, 1),
            (Department::Transport, 1),
            (Department::PowerSupply, 1),
            (Department::PublicSecurity, 1),
            (Department::Township, 1),
        ]
    );
    assert!(t.sections.iter().all(|s| s.required));
}

#[test]
fn default_template_keeps_the_chinese_text() {
    let t = default();
    let item = |n: u32| t.items().find(|(_, i)| i.number == n).unwrap().1;
    assert_eq!(item(1).title, "地质灾害隐患消除");
    assert_eq!(
        item(1).criterion.as_deref(),
        Some("无崩塌、滑坡、危岩浮石，边坡稳定")
    );
    assert_eq!(
        item(2).criterion.as_deref(),
        Some("按批准方案削坡分台阶，终了坡角≤设计值")
    );
    assert_eq!(
        item(24).title,
        "生产工艺设备拆除或淘汰，无复产条件（注销）/ 符合现有政策（延续）"
    );
    assert_eq!(item(28).title, "初验意见；群众无异议、无信访");
    assert_eq!(
        t.section(Department::Township).unwrap().name,
        "乡镇/林场（初验）"
    );
    assert_eq!(item(9).photo, PhotoExpectation::None);
    assert_eq!(item(26).photo, PhotoExpectation::Required);
}

#[test]
fn default_template_thresholds() {
    let t = default();
    let rule = |key: &str| match &t.field(key).unwrap().part.kind {
        AnswerKind::Number { unit, rule } => (unit.clone(), *rule),
        other => panic!("{key}: {other:?}"),
    };
    let fixed = |op, v: &str| {
        Some(NumberRule {
            op,
            threshold: Threshold::Value { value: d(v) },
        })
    };
    assert_eq!(
        rule("natural_resources/2.slope_angle"),
        (
            "°".into(),
            Some(NumberRule {
                op: CompareOp::Le,
                threshold: Threshold::DesignValue
            })
        )
    );
    assert_eq!(
        rule("natural_resources/4.rate"),
        ("%".into(), fixed(CompareOp::Ge, "100"))
    );
    assert_eq!(
        rule("forestry/19.coverage"),
        ("%".into(), fixed(CompareOp::Ge, "80"))
    );
    assert_eq!(
        rule("forestry/20.survival_rate"),
        ("%".into(), fixed(CompareOp::Ge, "85"))
    );
    assert_eq!(rule("water_resources/14.length"), ("米".into(), None));
    assert_eq!(rule("water_resources/15.count"), ("个".into(), None));
    assert_eq!(rule("forestry/18.area"), ("公顷".into(), None));
    // 不涉及 exactly where the reconstruction marks it.
    let na: Vec<u32> = t
        .items()
        .filter(|(_, i)| {
            i.parts.iter().any(|p| {
                matches!(
                    p.kind,
                    AnswerKind::PassFail {
                        not_applicable_allowed: true
                    }
                )
            })
        })
        .map(|(_, i)| i.number)
        .collect();
    assert_eq!(na, vec![8, 23]);
}

#[test]
fn field_keys_of_the_default_template() {
    let t = default();
    let keys = t.field_keys(Disposition::Cancel);
    assert_eq!(keys[0], "natural_resources/1.result");
    assert_eq!(keys[1], "natural_resources/2.slope_angle");
    assert_eq!(keys[2], "natural_resources/2.slope_angle.design");
    assert!(keys.contains(&"water_resources/14.length".to_owned()));
    assert!(keys.contains(&"water_resources/14.result".to_owned()));
    assert!(keys.contains(&"township/28.opinion".to_owned()));
    // 28 items, 7 of them with two parts, plus one design value.
    assert_eq!(keys.len(), 28 + 7 + 1);
    let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len());
    for key in &keys {
        assert_eq!(&t.field(key).unwrap().key(), key);
        assert_eq!(
            sync_protocol::op::section_of(key),
            t.field(key).unwrap().section.department.code()
        );
    }
}

// ----- parse errors ---------------------------------------------------------------------------

const SMALL: &str = r#"
[template]
id = "t"
version = "1"
title = "测试"

[[sections]]
department = "water_resources"
name = "水利"
applies_to = ["cancel", "continue"]

[[sections.items]]
number = 14
title = "截排水沟"
methods = ["site_inspection", "measurement"]
photo = "required"
[[sections.items.answer]]
key = "length"
kind = "number"
unit = "米"
op = ">="
threshold = "100.0"
[[sections.items.answer]]
key = "result"
kind = "pass_fail"

[[sections.items]]
number = 15
title = "沉淀池"
methods = ["site_inspection"]
applies_to = ["cancel"]
[[sections.items.answer]]
key = "result"
kind = "pass_fail"
not_applicable_allowed = true

[[sections]]
department = "township"
name = "初验"
required = false
[[sections.items]]
number = 1
title = "初验"
methods = ["check_records"]
[[sections.items.answer]]
key = "ok"
kind = "pass_fail"
[[sections.items.answer]]
key = "opinion"
kind = "text"
"#;

fn small() -> Template {
    Template::parse(SMALL).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn small_template_parses_with_defaults() {
    let t = small();
    let water = &t.sections[0];
    assert!(water.required);
    assert_eq!(
        water.applies_to,
        vec![Disposition::Cancel, Disposition::Continue]
    );
    assert_eq!(water.items[0].applies_to, water.applies_to);
    assert_eq!(water.items[1].applies_to, vec![Disposition::Cancel]);
    assert_eq!(t.sections[1].applies_to, Disposition::ALL.to_vec());
    assert_eq!(t.sections[1].items[0].photo, PhotoExpectation::None);
    assert_eq!(
        t.field_keys(Disposition::Continue),
        vec![
            "water_resources/14.length",
            "water_resources/14.result",
            "township/1.ok",
            "township/1.opinion"
        ]
    );
    assert_eq!(
        t.field_keys(Disposition::NeverProduced),
        vec!["township/1.ok", "township/1.opinion"]
    );
}

/// A template with one of every kind of mistake; each must be reported, with its path and line.
const BROKEN: &str = r#"[template]
id = "Bad Id"
version = ""
colour = "red"

[[sections]]
department = "water_resource"
name = "水利"
applies_to = ["cancel", "closed"]

[[sections.items]]
number = 14
title = "  "
methods = ["site_inspection", "looking"]
photo = "maybe"
[[sections.items.answer]]
key = "length"
kind = "number"
op = "≥"
threshold = "one hundred"
[[sections.items.answer]]
key = "length"
kind = "boolean"

[[sections.items]]
number = 14
title = "重复"
methods = []
[[sections.items.answer]]
key = "rate"
kind = "number"
unit = "%"
threshold = 85.5
op = "≈"

[[sections]]
department = "forestry"
name = "林业"
[[sections.items]]
number = 20
title = "苗木成活率"
methods = ["measurement"]
[[sections.items.answer]]
key = "Rate"
kind = "number"
unit = "%"
threshold = "85"
[[sections.items.answer]]
key = "result"
kind = "pass_fail"
unit = "%"
"#;

#[test]
fn every_error_is_reported_with_its_location() {
    let errs = Template::parse(BROKEN).unwrap_err();
    let got: Vec<(DataErrorKind, &str, Option<usize>)> = errs
        .errors
        .iter()
        .map(|e| (e.kind, e.path.as_str(), e.line))
        .collect();
    use DataErrorKind as K;
    let expected = [
        (K::MissingKey, "template.title", Some(1)),
        (K::UnknownKey, "template.colour", Some(4)),
        (K::BadKey, "template.id", Some(2)),
        (K::Empty, "template.version", Some(3)),
        (K::UnknownDepartment, "sections[0].department", Some(7)),
        (K::UnknownDisposition, "sections[0].applies_to[1]", Some(9)),
        (K::Empty, "sections[0].items[0].title", Some(13)),
        (
            K::UnknownMethod,
            "sections[0].items[0].methods[1]",
            Some(14),
        ),
        (
            K::UnknownPhotoExpectation,
            "sections[0].items[0].photo",
            Some(15),
        ),
        (
            K::MissingUnit,
            "sections[0].items[0].answer[0].unit",
            Some(16),
        ),
        (
            K::NotADecimal,
            "sections[0].items[0].answer[0].threshold",
            Some(20),
        ),
        (
            K::UnknownAnswerKind,
            "sections[0].items[0].answer[1].kind",
            Some(23),
        ),
        (K::Empty, "sections[0].items[1].methods", Some(28)),
        (
            K::UnknownOperator,
            "sections[0].items[1].answer[0].op",
            Some(34),
        ),
        (
            K::NotADecimal,
            "sections[0].items[1].answer[0].threshold",
            Some(33),
        ),
        (K::BadKey, "sections[1].items[0].answer[0].key", Some(44)),
        (
            K::IncompleteRule,
            "sections[1].items[0].answer[0]",
            Some(47),
        ),
        (K::Conflict, "sections[1].items[0].answer[1].unit", Some(51)),
    ];
    for e in &expected {
        assert!(got.contains(e), "missing {e:?}\n got: {got:#?}");
    }
    // The item-number duplicate is caught even though the first item 14 itself has errors? No:
    // an item that fails to read cannot be compared, so it is not claimed as a duplicate.
    assert_eq!(
        got.len(),
        expected.len(),
        "unexpected extra errors: {got:#?}"
    );
    let text = errs.to_string();
    assert!(
        text.contains("line 7: sections[0].department: unknown department \"water_resource\""),
        "{text}"
    );
}

#[test]
fn duplicates_are_reported() {
    let text = SMALL
        .replace("number = 15", "number = 14")
        .replace(
            "department = \"township\"",
            "department = \"water_resources\"",
        )
        .replace("key = \"opinion\"", "key = \"ok\"");
    let errs = Template::parse(&text).unwrap_err();
    let got: Vec<(DataErrorKind, &str)> = errs
        .errors
        .iter()
        .map(|e| (e.kind, e.path.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (DataErrorKind::Duplicate, "sections[0].items[1].number"),
            (
                DataErrorKind::Duplicate,
                "sections[1].items[0].answer[1].key"
            ),
            (DataErrorKind::Duplicate, "sections[1].department"),
        ]
    );
    assert!(errs.errors.iter().all(|e| e.line.is_some()));
}

#[test]
fn structural_errors() {
    let errs = Template::parse("sections = 3\n").unwrap_err();
    assert!(errs.has(DataErrorKind::MissingKey, "template"));
    assert!(errs.has(DataErrorKind::WrongType, "sections"));
    let errs = Template::parse("[template\n").unwrap_err();
    assert_eq!(errs.errors.len(), 1);
    assert_eq!(errs.errors[0].kind, DataErrorKind::Syntax);
    assert_eq!(errs.errors[0].line, Some(1));
    let errs = Template::parse("sections=[]\n[template]\nid=\"a\"\nversion=\"1\"\ntitle=\"t\"\n")
        .unwrap_err();
    assert!(errs.has(DataErrorKind::Empty, "sections"));
    // An item narrower than its section is fine; wider is a conflict.
    let text = SMALL.replace(
        "applies_to = [\"cancel\"]",
        "applies_to = [\"never_produced\"]",
    );
    let errs = Template::parse(&text).unwrap_err();
    assert!(errs.has(DataErrorKind::Conflict, "sections[0].items[1].applies_to"));
    // Text parts take no unit; pass/fail parts no threshold.
    let text = SMALL.replace("kind = \"text\"", "kind = \"text\"\nunit = \"米\"");
    assert!(Template::parse(&text).unwrap_err().has(
        DataErrorKind::Conflict,
        "sections[1].items[0].answer[1].unit"
    ));
}

#[test]
fn integer_thresholds_are_exact_and_floats_refused() {
    let t = Template::parse(&SMALL.replace("\"100.0\"", "100")).unwrap();
    let AnswerKind::Number {
        rule: Some(rule), ..
    } = &t.sections[0].items[0].parts[0].kind
    else {
        panic!()
    };
    assert_eq!(rule.threshold, Threshold::Value { value: d("100") });
    let errs = Template::parse(&SMALL.replace("\"100.0\"", "100.0")).unwrap_err();
    assert!(errs.has(
        DataErrorKind::NotADecimal,
        "sections[0].items[0].answer[0].threshold"
    ));
}

// ----- answers --------------------------------------------------------------------------------

#[test]
fn pass_fail_answers() {
    let t = default();
    let c = Disposition::Cancel;
    assert_eq!(
        t.validate_answer(c, "natural_resources/1.result", &s("pass")),
        Ok(Some(Answer::PassFail(Outcome::Pass)))
    );
    assert_eq!(
        t.validate_answer(c, "natural_resources/1.result", &s("fail")),
        Ok(Some(Answer::PassFail(Outcome::Fail)))
    );
    assert!(matches!(
        t.validate_answer(c, "natural_resources/1.result", &s("not_applicable")),
        Err(AnswerError::NotApplicableNotAllowed { .. })
    ));
    assert_eq!(
        t.validate_answer(c, "emergency_management/8.result", &s("not_applicable")),
        Ok(Some(Answer::PassFail(Outcome::NotApplicable)))
    );
    for bad in [s("达标"), s("PASS"), Value::Bool(true), Value::Int(1)] {
        assert!(
            matches!(
                t.validate_answer(c, "natural_resources/1.result", &bad),
                Err(AnswerError::WrongType { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        t.validate_answer(c, "natural_resources/1.result", &Value::Null),
        Ok(None)
    );
}

#[test]
fn number_answers_are_exact_decimals_in_the_template_unit() {
    let t = default();
    let c = Disposition::Continue;
    let key = "forestry/20.survival_rate";
    for (value, expected) in [
        ("85.5", "85.5"),
        ("85", "85"),
        ("85.0 %", "85"),
        ("85%", "85"),
        ("85％", "85"),
    ] {
        assert_eq!(
            t.validate_answer(c, key, &s(value)),
            Ok(Some(Answer::Number(d(expected)))),
            "{value}"
        );
    }
    assert_eq!(
        t.validate_answer(c, key, &Value::Int(90)),
        Ok(Some(Answer::Number(d("90"))))
    );
    assert_eq!(
        t.validate_answer(c, "water_resources/14.length", &s("120 m")),
        Ok(Some(Answer::Number(d("120"))))
    );
    assert_eq!(
        t.validate_answer(c, "water_resources/14.length", &s("120.5米")),
        Ok(Some(Answer::Number(d("120.5"))))
    );
    assert_eq!(
        t.validate_answer(c, "water_resources/14.length", &s("120 公顷")),
        Err(AnswerError::WrongUnit {
            key: "water_resources/14.length".into(),
            expected: "米".into(),
            found: "公顷".into()
        })
    );
    for bad in ["eighty", "8,5", "1e2", "", "85.5.1", "NaN", "约85"] {
        assert!(
            matches!(
                t.validate_answer(c, key, &s(bad)),
                Err(AnswerError::NotANumber { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        t.validate_answer(c, key, &Value::Bool(true)),
        Err(AnswerError::WrongType { .. })
    ));
    // A float cannot even reach here: the sync protocol refuses it when decoding.
    assert!(Value::from_json(serde_json::json!(85.5)).is_err());
    assert_eq!(
        t.validate_answer(c, "natural_resources/2.slope_angle.design", &s("35°")),
        Ok(Some(Answer::Number(d("35"))))
    );
}

#[test]
fn text_answers_and_key_errors() {
    let t = default();
    let c = Disposition::Cancel;
    assert_eq!(
        t.validate_answer(c, "township/28.opinion", &s("同意，群众无异议")),
        Ok(Some(Answer::Text("同意，群众无异议".into())))
    );
    assert!(matches!(
        t.validate_answer(
            c,
            "township/28.opinion",
            &s(&"字".repeat(MAX_TEXT_CHARS + 1))
        ),
        Err(AnswerError::TextTooLong { .. })
    ));
    for key in [
        "township",
        "township/x.opinion",
        "township/28",
        "township/28.opinion.x.y",
        "township/28.opinion.x",
    ] {
        assert!(
            matches!(
                t.validate_answer(c, key, &s("x")),
                Err(AnswerError::MalformedKey { .. })
            ),
            "{key}"
        );
    }
    for key in [
        "police/27.result",
        "forestry/27.result",
        "public_security/27.results",
        "natural_resources/1.result.design",
        "natural_resources/99.result",
    ] {
        assert!(
            matches!(
                t.validate_answer(c, key, &s("pass")),
                Err(AnswerError::UnknownField { .. })
            ),
            "{key}"
        );
    }
}

#[test]
fn answers_outside_the_disposition_are_refused() {
    let t = small();
    assert!(matches!(
        t.validate_answer(
            Disposition::Continue,
            "water_resources/15.result",
            &s("pass")
        ),
        Err(AnswerError::NotApplicable {
            disposition: Disposition::Continue,
            ..
        })
    ));
    assert!(matches!(
        t.validate_answer(
            Disposition::NeverProduced,
            "water_resources/14.result",
            &s("pass")
        ),
        Err(AnswerError::NotApplicable { .. })
    ));
    assert!(
        t.validate_answer(Disposition::Cancel, "water_resources/15.result", &s("pass"))
            .is_ok()
    );
}

// ----- verdict --------------------------------------------------------------------------------

/// Every deciding field of the default template answered so that it passes.
fn all_passing(t: &Template, disposition: Disposition) -> BTreeMap<String, Answer> {
    let mut values: Vec<(String, Value)> = Vec::new();
    for f in t.fields(disposition) {
        let v = match (&f.part.kind, f.role) {
            (_, FieldRole::DesignValue) => s("45"),
            (AnswerKind::PassFail { .. }, _) => s("pass"),
            (
                AnswerKind::Number {
                    rule:
                        Some(NumberRule {
                            threshold: Threshold::Value { value },
                            ..
                        }),
                    ..
                },
                _,
            ) => s(&value.to_string()),
            (AnswerKind::Number { .. }, _) => s("45.0"),
            (AnswerKind::Text, _) => s("无"),
        };
        values.push((f.key(), v));
    }
    let (answers, refused) =
        t.collect_answers(disposition, values.iter().map(|(k, v)| (k.as_str(), v)));
    assert_eq!(refused, vec![]);
    answers
}

#[test]
fn record_passes_when_every_required_section_passes() {
    let t = default();
    let answers = all_passing(&t, Disposition::Cancel);
    let v = t.verdict(
        Disposition::Cancel,
        &answers,
        FailureConclusion::RectifyByDeadline,
    );
    assert_eq!(v.conclusion, Conclusion::Passed);
    assert_eq!(v.conclusion.name_zh(), "达标");
    assert!(v.failing.is_empty() && v.advisory.is_empty());
    assert_eq!(v.sections.len(), 11);
    assert!(v.sections.iter().all(|s| s.passed));
}

#[test]
fn thresholds_compare_exactly() {
    let t = default();
    let dsp = Disposition::Cancel;
    let mut answers = all_passing(&t, dsp);
    let mut set = |key: &str, v: &str| {
        answers.insert(
            key.to_owned(),
            t.validate_answer(dsp, key, &s(v)).unwrap().unwrap(),
        );
    };
    set("forestry/20.survival_rate", "85.0"); // = 85: passes (≥)
    set("forestry/19.coverage", "79.99"); // < 80: fails
    set("natural_resources/4.rate", "100.00"); // = 100: passes
    set("natural_resources/2.slope_angle", "45.0001"); // > design 45: fails (≤)
    let v = t.verdict(dsp, &answers, FailureConclusion::RectifyByDeadline);
    assert_eq!(v.conclusion, Conclusion::RectifyByDeadline);
    let failing: Vec<(&str, &ProblemReason)> = v
        .failing
        .iter()
        .map(|p| (p.field_key.as_str(), &p.reason))
        .collect();
    assert_eq!(
        failing,
        vec![
            (
                "natural_resources/2.slope_angle",
                &ProblemReason::ThresholdNotMet {
                    value: d("45.0001"),
                    op: CompareOp::Le,
                    threshold: d("45")
                }
            ),
            (
                "forestry/19.coverage",
                &ProblemReason::ThresholdNotMet {
                    value: d("79.99"),
                    op: CompareOp::Ge,
                    threshold: d("80")
                }
            ),
        ]
    );
    let forestry = v
        .sections
        .iter()
        .find(|s| s.department == Department::Forestry)
        .unwrap();
    assert!(!forestry.passed);
    let water = v
        .sections
        .iter()
        .find(|s| s.department == Department::WaterResources)
        .unwrap();
    assert!(water.passed);
}

#[test]
fn failures_missing_answers_and_not_applicable_items() {
    let t = default();
    let dsp = Disposition::Continue;
    let mut answers = all_passing(&t, dsp);
    answers.insert(
        "water_resources/14.result".into(),
        Answer::PassFail(Outcome::Fail),
    );
    answers.remove("public_security/27.result");
    answers.remove("natural_resources/2.slope_angle.design");
    // 不涉及 on item 23 makes the whole item not applicable: its text may stay empty.
    answers.insert(
        "agriculture_rural/23.result".into(),
        Answer::PassFail(Outcome::NotApplicable),
    );
    answers.remove("agriculture_rural/23.measures");
    // Text and threshold-less numbers never decide.
    answers.remove("township/28.opinion");
    answers.remove("water_resources/14.length");
    let v = t.verdict(dsp, &answers, FailureConclusion::Failed);
    assert_eq!(v.conclusion, Conclusion::Failed);
    assert_eq!(v.conclusion.name_zh(), "不达标");
    let failing: Vec<(u32, &ProblemReason)> =
        v.failing.iter().map(|p| (p.number, &p.reason)).collect();
    assert_eq!(
        failing,
        vec![
            (2, &ProblemReason::DesignValueMissing),
            (14, &ProblemReason::Failed),
            (27, &ProblemReason::Unanswered),
        ]
    );
    assert_eq!(v.failing[1].title, "截排水沟闭合、畅通、无淤堵");
    let agri = v
        .sections
        .iter()
        .find(|s| s.department == Department::AgricultureRural)
        .unwrap();
    assert!(agri.passed);
    let township = v
        .sections
        .iter()
        .find(|s| s.department == Department::Township)
        .unwrap();
    assert!(township.passed);
}

#[test]
fn optional_sections_are_advisory_and_inapplicable_items_are_skipped() {
    let t = small();
    // Continue mines: item 15 does not apply; the township section is not required.
    let mut answers = BTreeMap::new();
    answers.insert(
        "water_resources/14.length".to_owned(),
        Answer::Number(d("100")),
    );
    answers.insert(
        "water_resources/14.result".to_owned(),
        Answer::PassFail(Outcome::Pass),
    );
    answers.insert("township/1.ok".to_owned(), Answer::PassFail(Outcome::Fail));
    let v = t.verdict(
        Disposition::Continue,
        &answers,
        FailureConclusion::RectifyByDeadline,
    );
    assert_eq!(v.conclusion, Conclusion::Passed);
    assert_eq!(v.sections[0].applicable_items, 1);
    assert_eq!(v.advisory.len(), 1);
    assert_eq!(v.advisory[0].field_key, "township/1.ok");
    // Cancel mines: item 15 applies and is unanswered.
    let v = t.verdict(
        Disposition::Cancel,
        &answers,
        FailureConclusion::RectifyByDeadline,
    );
    assert_eq!(v.conclusion, Conclusion::RectifyByDeadline);
    assert_eq!(v.failing[0].field_key, "water_resources/15.result");
    // 99.99 m misses "≥ 100.0".
    answers.insert(
        "water_resources/14.length".to_owned(),
        Answer::Number(d("99.99")),
    );
    let v = t.verdict(
        Disposition::Continue,
        &answers,
        FailureConclusion::RectifyByDeadline,
    );
    assert_eq!(v.conclusion, Conclusion::RectifyByDeadline);
    // Never-produced mines: only the (optional) township section applies.
    let v = t.verdict(
        Disposition::NeverProduced,
        &answers,
        FailureConclusion::RectifyByDeadline,
    );
    assert_eq!(v.sections.len(), 1);
    assert_eq!(v.conclusion, Conclusion::Passed);
}

#[test]
fn verdict_serialises_for_the_api() {
    let t = small();
    let v = t.verdict(
        Disposition::Cancel,
        &BTreeMap::new(),
        FailureConclusion::RectifyByDeadline,
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["conclusion"], "rectify_by_deadline");
    assert_eq!(json["failing"][0]["reason"]["kind"], "unanswered");
    let part = serde_json::to_value(&t.sections[0].items[0].parts[0]).unwrap();
    assert_eq!(
        part,
        serde_json::json!({"key": "length", "label": null, "kind": "number", "unit": "米",
            "rule": {"op": "ge", "threshold": {"kind": "value", "value": "100.0"}}})
    );
}

// ----- item texts (备注, 整改要求) ------------------------------------------------------------

#[test]
fn every_item_takes_a_remark_and_a_rectification_requirement() {
    let t = small();
    let c = Disposition::Cancel;
    for key in [
        "water_resources/14.remark",
        "water_resources/14.rectification",
        "water_resources/15.remark",
        "township/1.rectification",
    ] {
        assert_eq!(
            t.validate_answer(c, key, &s("沟底有淤积，需清理")),
            Ok(Some(Answer::Text("沟底有淤积，需清理".into()))),
            "{key}"
        );
        assert_eq!(t.validate_answer(c, key, &Value::Null), Ok(None), "{key}");
    }
    assert_eq!(
        t.item_text("water_resources/14.rectification")
            .unwrap()
            .map(|(s, i, text)| (s.department, i.number, text)),
        Some((Department::WaterResources, 14, ItemText::Rectification))
    );
    assert_eq!(
        item_text_key(Department::Forestry, 19, ItemText::Remark),
        "forestry/19.remark"
    );
    assert_eq!(t.item_text("water_resources/14.result"), Ok(None));
}

#[test]
fn item_texts_are_checked_like_text_answers() {
    let t = small();
    let c = Disposition::Cancel;
    let long = "字".repeat(MAX_TEXT_CHARS + 1);
    assert!(matches!(
        t.validate_answer(c, "water_resources/14.remark", &s(&long)),
        Err(AnswerError::TextTooLong { .. })
    ));
    assert!(
        t.validate_answer(
            c,
            "water_resources/14.remark",
            &s(&"字".repeat(MAX_TEXT_CHARS))
        )
        .is_ok()
    );
    assert!(matches!(
        t.validate_answer(c, "water_resources/14.rectification", &Value::Int(3)),
        Err(AnswerError::WrongType { .. })
    ));
    // No such item, an item of another section, no such section, a bad number.
    for key in [
        "water_resources/99.remark",
        "township/14.remark",
        "forestry/14.remark",
        "nowhere/14.remark",
    ] {
        assert!(
            matches!(
                t.validate_answer(c, key, &s("x")),
                Err(AnswerError::UnknownField { .. })
            ),
            "{key}"
        );
    }
    assert!(matches!(
        t.validate_answer(c, "water_resources/x.remark", &s("x")),
        Err(AnswerError::MalformedKey { .. })
    ));
    assert!(matches!(
        t.validate_answer(c, "water_resources/14.remark.design", &s("x")),
        Err(AnswerError::UnknownField { .. } | AnswerError::MalformedKey { .. })
    ));
    // Same applicability as the item.
    assert!(matches!(
        t.validate_answer(Disposition::Continue, "water_resources/15.remark", &s("x")),
        Err(AnswerError::NotApplicable { .. })
    ));
}

#[test]
fn item_texts_never_decide_the_verdict() {
    let t = default();
    let c = Disposition::Cancel;
    let mut answers = all_passing(&t, c);
    let texts: Vec<(String, Value)> = t
        .items()
        .flat_map(|(s, i)| {
            ItemText::ALL.map(|text| {
                (
                    item_text_key(s.department, i.number, text),
                    self::s("须整改"),
                )
            })
        })
        .filter(|(k, _)| t.validate_answer(c, k, &Value::Null).is_ok())
        .collect();
    assert!(!texts.is_empty());
    let (more, refused) = t.collect_answers(c, texts.iter().map(|(k, v)| (k.as_str(), v)));
    assert_eq!(refused, vec![]);
    answers.extend(more);
    let v = t.verdict(c, &answers, FailureConclusion::RectifyByDeadline);
    assert_eq!(v.conclusion, Conclusion::Passed);
}

#[test]
fn remark_and_rectification_are_reserved_part_keys() {
    for reserved in ["remark", "rectification"] {
        let text = SMALL.replace("key = \"opinion\"", &format!("key = \"{reserved}\""));
        let errs = Template::parse(&text).unwrap_err();
        assert!(
            errs.has(DataErrorKind::BadKey, "sections[1].items[0].answer[1].key"),
            "{errs}"
        );
    }
}
