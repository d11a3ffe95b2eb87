use super::*;
use proptest::prelude::*;

fn parse(t: &PgType, text: &str) -> Value {
    parse_text(t, -1, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn scalars() {
    assert_eq!(parse(&PgType::Bool, "t"), Value::Bool(true));
    assert_eq!(parse(&PgType::Int2, "-32768"), Value::Int16(i16::MIN));
    assert_eq!(
        parse(&PgType::Int8, "9223372036854775807"),
        Value::Int64(i64::MAX)
    );
    assert_eq!(parse(&PgType::Float8, "1.5e+20"), Value::Float64(1.5e20));
    assert!(matches!(parse(&PgType::Float4, "NaN"), Value::Float32(v) if v.is_nan()));
    assert_eq!(
        parse(&PgType::Numeric, "-12.340"),
        Value::Decimal(Decimal::new(-12340, 3))
    );
    assert!(matches!(parse(&PgType::Numeric, "NaN"), Value::Float64(v) if v.is_nan()));
    assert_eq!(
        parse(&PgType::Money, "-$1,234.56"),
        Value::Decimal(Decimal::new(-123456, 2))
    );
    assert_eq!(
        parse(&PgType::Bytea, "\\x00ff10"),
        Value::Bytes(vec![0, 255, 16])
    );
    assert_eq!(
        parse(&PgType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        Value::Uuid([
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11
        ])
    );
    assert_eq!(
        parse(&PgType::Enum(vec!["sad".into()]), "sad"),
        Value::Enum("sad".into())
    );
    assert!(parse_text(&PgType::Int4, -1, b"12x").is_err());
    assert!(
        parse_text(&PgType::Text, -1, &[0xff, 0xfe]).is_err(),
        "invalid UTF-8 is an error, not a panic"
    );
}

#[test]
fn temporal() {
    assert_eq!(parse(&PgType::Date, "1970-01-02"), Value::Date(1));
    assert_eq!(parse(&PgType::Date, "2000-03-01"), Value::Date(11_017));
    // 1 BC is the proleptic year 0, a leap year: 366 days before 0001-01-01 (-719_162).
    assert_eq!(parse(&PgType::Date, "0001-01-01 BC"), Value::Date(-719_528));
    assert_eq!(
        parse(&PgType::Date, "infinity"),
        Value::Date(-2_147_472_692)
    );
    assert_eq!(
        parse(&PgType::Time, "01:02:03.5"),
        Value::Time(3_723_500_000)
    );
    assert_eq!(
        parse(&PgType::Time, "24:00:00"),
        Value::Time(86_400_000_000)
    );
    assert_eq!(
        parse(&PgType::TimeTz, "10:00:00+05:30"),
        Value::TimeTz {
            micros: 36_000_000_000,
            offset_seconds: 19_800
        }
    );
    assert_eq!(
        parse(&PgType::TimeTz, "10:00:00-08"),
        Value::TimeTz {
            micros: 36_000_000_000,
            offset_seconds: -28_800
        }
    );
    assert_eq!(
        parse(&PgType::Timestamp, "1970-01-01 00:00:01.000001"),
        Value::Timestamp(1_000_001)
    );
    assert_eq!(
        parse(&PgType::TimestampTz, "2023-11-14 22:13:20.5+00"),
        Value::TimestampTz(1_700_000_000_500_000)
    );
    assert_eq!(
        parse(&PgType::TimestampTz, "2023-11-15 00:13:20+02"),
        Value::TimestampTz(1_700_000_000_000_000)
    );
    assert_eq!(
        parse(&PgType::Timestamp, "infinity"),
        Value::Timestamp(TIMESTAMP_POS_INFINITY)
    );
    assert_eq!(
        parse(&PgType::Interval, "P1Y2M3DT4H5M6.78S"),
        Value::Interval(Interval {
            months: 14,
            days: 3,
            micros: 14_706_780_000
        })
    );
    assert_eq!(
        parse(&PgType::Interval, "P-1Y-2M3DT-4H-5M-6.5S"),
        Value::Interval(Interval {
            months: -14,
            days: 3,
            micros: -14_706_500_000
        })
    );
    assert_eq!(
        parse(&PgType::Interval, "PT0S"),
        Value::Interval(Interval::default())
    );
}

#[test]
fn bits_points_hstore() {
    assert_eq!(
        parse_text(&PgType::Bit, 1, b"1").unwrap(),
        Value::Bool(true)
    );
    // 0b1_0000_0001 = 257 → least significant byte first.
    assert_eq!(
        parse(&PgType::Varbit, "100000001"),
        Value::Bytes(vec![0x01, 0x01])
    );
    let Value::Geometry { point, wkb, .. } = parse(&PgType::Point, "(1.5,-2)") else {
        panic!()
    };
    assert_eq!(point, Some((1.5, -2.0)));
    assert_eq!(wkb.len(), 21);
    assert_eq!(
        parse(&PgType::Hstore, r#""a"=>"1", "b"=>NULL, "c\"q"=>"x""#),
        Value::Json(r#"{"a":"1","b":null,"c\"q":"x"}"#.into())
    );
    assert_eq!(
        parse(&PgType::HstoreMap, r#""a"=>"1", "b"=>NULL, "c\"q"=>"x""#),
        Value::StringMap(vec![
            ("a".into(), Some("1".into())),
            ("b".into(), None),
            ("c\"q".into(), Some("x".into())),
        ])
    );
    assert_eq!(parse(&PgType::HstoreMap, ""), Value::StringMap(vec![]));
    // A key must be text: NULL is not a key.
    assert!(parse_text(&PgType::HstoreMap, -1, b"NULL=>\"x\"").is_err());
}

#[test]
fn arrays() {
    let ints = PgType::Array(Box::new(PgType::Int4));
    assert_eq!(
        parse(&ints, "{1,NULL,3}"),
        Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)])
    );
    assert_eq!(
        parse(&ints, "{{1,2},{3,4}}"),
        Value::Array((1..=4).map(Value::Int32).collect())
    );
    assert_eq!(
        parse(&ints, "[0:1]={7,8}"),
        Value::Array(vec![Value::Int32(7), Value::Int32(8)])
    );
    assert_eq!(parse(&ints, "{}"), Value::Array(vec![]));
    let texts = PgType::Array(Box::new(PgType::Text));
    assert_eq!(
        parse(
            &texts,
            r#"{plain,"with space","q\"uote","NULL",NULL,"b\\s"}"#
        ),
        Value::Array(vec![
            Value::String("plain".into()),
            Value::String("with space".into()),
            Value::String("q\"uote".into()),
            Value::String("NULL".into()),
            Value::Null,
            Value::String("b\\s".into()),
        ])
    );
    assert!(parse_text(&ints, -1, b"{1,2").is_err());
}

#[test]
fn type_modifiers() {
    // numeric(10,2): typmod = (10 << 16 | 2) + 4.
    assert_eq!(
        PgType::Numeric.data_type((10 << 16 | 2) + 4),
        DataType::Decimal {
            precision: Some(10),
            scale: Some(2)
        }
    );
    assert_eq!(
        PgType::Numeric.data_type(-1),
        DataType::Decimal {
            precision: None,
            scale: None
        }
    );
    assert_eq!(
        PgType::Text.data_type(24),
        DataType::String { length: Some(20) }
    );
    assert_eq!(
        PgType::Timestamp.data_type(3),
        DataType::Timestamp { precision: Some(3) }
    );
    assert_eq!(
        PgType::Timestamp.data_type(-1),
        DataType::Timestamp { precision: Some(6) }
    );
    assert_eq!(PgType::Bit.data_type(1), DataType::Bool);
    assert_eq!(PgType::Bit.data_type(8), DataType::Bits { length: 8 });
    assert_eq!(builtin(1007), Some(PgType::Array(Box::new(PgType::Int4))));
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,40}", which in 0usize..13) {
        let types = [
            PgType::Date, PgType::Time, PgType::TimeTz, PgType::Timestamp, PgType::TimestampTz,
            PgType::Interval, PgType::Numeric, PgType::Money, PgType::Point, PgType::Hstore,
            PgType::Array(Box::new(PgType::Text)), PgType::Varbit, PgType::HstoreMap,
        ];
        let _ = parse_text(&types[which], -1, text.as_bytes());
    }

    #[test]
    fn dates_round_trip_through_the_civil_calendar(days in -1_000_000i64..1_000_000) {
        let (y, m, d) = civil(days);
        let text = if y > 0 { format!("{y:04}-{m:02}-{d:02}") } else { format!("{:04}-{m:02}-{d:02} BC", 1 - y) };
        prop_assert_eq!(parse_date_days(&text), Some(days));
    }
}

fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

proptest! {
    /// The fixed-layout reading of a timestamp agrees with the general one on the
    /// server's own forms (any instant of years 1–9999, 0–6 fractional digits, offsets
    /// with minutes and seconds).
    #[test]
    fn fixed_layout_timestamps_match_the_general_parser(
        days in 0i64..3_652_059,
        of_day in 0i64..86_400_000_000,
        digits in 0usize..=6,
        offset in -57_599i32..57_599,
        with_zone in any::<bool>(),
    ) {
        let micros = (days - 719_162) * 86_400_000_000 + of_day;
        let (y, m, d) = civil(days - 719_162);
        let secs = of_day / 1_000_000;
        let mut text = format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        if digits > 0 {
            let fraction = format!("{:06}", of_day % 1_000_000);
            text.push('.');
            text.push_str(&fraction[..digits]);
        }
        if with_zone {
            let sign = if offset < 0 { '-' } else { '+' };
            let a = offset.unsigned_abs();
            text.push_str(&format!("{sign}{:02}", a / 3600));
            if a % 3600 != 0 {
                text.push_str(&format!(":{:02}", a / 60 % 60));
                if a % 60 != 0 {
                    text.push_str(&format!(":{:02}", a % 60));
                }
            }
        }
        let fixed = parse_timestamp_fixed(text.as_bytes(), with_zone);
        prop_assert!(fixed.is_some(), "{}", text);
        prop_assert_eq!(fixed, parse_timestamp_general(&text, with_zone), "{}", text);
        if !with_zone && digits == 6 {
            prop_assert_eq!(fixed, Some(micros));
        }
    }

    /// Whatever the fixed-layout reading accepts, the general parser reads the same way.
    #[test]
    fn fixed_layout_timestamps_never_disagree(
        text in "[0-9]{4}-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2]) ([01][0-9]|2[0-5]):[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,7})?([+-][0-9]{1,2}(:[0-9]{2}){0,3})?( BC)?",
        with_zone in any::<bool>(),
    ) {
        if let Some(fixed) = parse_timestamp_fixed(text.as_bytes(), with_zone) {
            prop_assert_eq!(Some(fixed), parse_timestamp_general(&text, with_zone), "{}", text);
        }
    }
}
