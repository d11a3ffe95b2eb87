use super::*;
use proptest::prelude::*;

/// Builds messages the way the server writes them.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn tag(mut self, t: u8) -> Self {
        self.0.push(t);
        self
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn string(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }
    fn text(self, s: &str) -> Self {
        let w = self.u8(b't').i32(s.len() as i32);
        let mut w = w;
        w.0.extend_from_slice(s.as_bytes());
        w
    }
}

fn relation(xid: Option<u32>) -> Vec<u8> {
    let mut w = Writer::default().tag(b'R');
    if let Some(x) = xid {
        w = w.u32(x);
    }
    w.u32(16384)
        .string("public")
        .string("items")
        .u8(b'd')
        .u16(2)
        .u8(1)
        .string("id")
        .u32(23)
        .i32(-1)
        .u8(0)
        .string("name")
        .u32(1043)
        .i32(24)
        .0
}

#[test]
fn begin_commit_origin() {
    let mut d = Decoder::new();
    let begin = Writer::default().tag(b'B').u64(0x100).u64(42).u32(777).0;
    assert_eq!(
        d.decode(&begin).unwrap(),
        Message::Begin {
            final_lsn: 0x100,
            commit_time: 42,
            xid: 777
        }
    );
    let commit = Writer::default()
        .tag(b'C')
        .u8(0)
        .u64(0x100)
        .u64(0x180)
        .u64(42)
        .0;
    assert_eq!(
        d.decode(&commit).unwrap(),
        Message::Commit {
            flags: 0,
            commit_lsn: 0x100,
            end_lsn: 0x180,
            commit_time: 42
        }
    );
    let origin = Writer::default().tag(b'O').u64(9).string("node_a").0;
    assert_eq!(
        d.decode(&origin).unwrap(),
        Message::Origin {
            commit_lsn: 9,
            name: "node_a"
        }
    );
}

#[test]
fn relation_and_rows() {
    let mut d = Decoder::new();
    let bytes = relation(None);
    let Message::Relation {
        relation_id,
        namespace,
        name,
        replica_identity,
        columns,
        xid,
    } = d.decode(&bytes).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (relation_id, namespace, name, replica_identity, xid),
        (16384, "public", "items", b'd', None)
    );
    assert_eq!(
        columns[0],
        RelationColumn {
            is_key: true,
            name: "id",
            type_oid: 23,
            type_modifier: -1
        }
    );
    assert_eq!(columns[1].type_modifier, 24);

    let insert = Writer::default()
        .tag(b'I')
        .u32(16384)
        .u8(b'N')
        .u16(2)
        .text("1")
        .u8(b'n')
        .0;
    assert_eq!(
        d.decode(&insert).unwrap(),
        Message::Insert {
            xid: None,
            relation_id: 16384,
            new: vec![ColumnData::Text(b"1"), ColumnData::Null]
        }
    );
    let update = Writer::default()
        .tag(b'U')
        .u32(16384)
        .u8(b'K')
        .u16(2)
        .text("1")
        .u8(b'n')
        .u8(b'N')
        .u16(2)
        .text("2")
        .u8(b'u')
        .0;
    assert_eq!(
        d.decode(&update).unwrap(),
        Message::Update {
            xid: None,
            relation_id: 16384,
            old: Some((
                OldTupleKind::Key,
                vec![ColumnData::Text(b"1"), ColumnData::Null]
            )),
            new: vec![ColumnData::Text(b"2"), ColumnData::UnchangedToast],
        }
    );
    let plain_update = Writer::default()
        .tag(b'U')
        .u32(16384)
        .u8(b'N')
        .u16(1)
        .text("3")
        .0;
    assert!(matches!(
        d.decode(&plain_update).unwrap(),
        Message::Update { old: None, .. }
    ));
    let delete = Writer::default()
        .tag(b'D')
        .u32(16384)
        .u8(b'O')
        .u16(1)
        .text("3")
        .0;
    assert_eq!(
        d.decode(&delete).unwrap(),
        Message::Delete {
            xid: None,
            relation_id: 16384,
            old: (OldTupleKind::Full, vec![ColumnData::Text(b"3")])
        }
    );
    let truncate = Writer::default()
        .tag(b'T')
        .u32(2)
        .u8(1)
        .u32(16384)
        .u32(16390)
        .0;
    assert_eq!(
        d.decode(&truncate).unwrap(),
        Message::Truncate {
            xid: None,
            options: 1,
            relation_ids: vec![16384, 16390]
        }
    );
    let type_message = Writer::default()
        .tag(b'Y')
        .u32(90000)
        .string("public")
        .string("mood")
        .0;
    assert_eq!(
        d.decode(&type_message).unwrap(),
        Message::Type {
            xid: None,
            type_oid: 90000,
            namespace: "public",
            name: "mood"
        }
    );
    let mut message = Writer::default()
        .tag(b'M')
        .u8(1)
        .u64(5)
        .string("outflow")
        .u32(3)
        .0;
    message.extend_from_slice(b"abc");
    assert_eq!(
        d.decode(&message).unwrap(),
        Message::LogicalMessage {
            xid: None,
            transactional: true,
            lsn: 5,
            prefix: "outflow",
            content: b"abc"
        }
    );
}

#[test]
fn streamed_transactions_carry_xids_inside_the_stream() {
    let mut d = Decoder::new();
    let start = Writer::default().tag(b'S').u32(901).u8(1).0;
    assert_eq!(
        d.decode(&start).unwrap(),
        Message::StreamStart {
            xid: 901,
            first_segment: true
        }
    );
    assert!(d.in_stream());
    let bytes = relation(Some(901));
    assert!(matches!(
        d.decode(&bytes).unwrap(),
        Message::Relation { xid: Some(901), .. }
    ));
    let insert = Writer::default()
        .tag(b'I')
        .u32(901)
        .u32(16384)
        .u8(b'N')
        .u16(1)
        .text("1")
        .0;
    assert!(matches!(
        d.decode(&insert).unwrap(),
        Message::Insert { xid: Some(901), .. }
    ));
    assert_eq!(d.decode(b"E").unwrap(), Message::StreamStop);
    assert!(!d.in_stream());
    let commit = Writer::default()
        .tag(b'c')
        .u32(901)
        .u8(0)
        .u64(10)
        .u64(20)
        .u64(30)
        .0;
    assert_eq!(
        d.decode(&commit).unwrap(),
        Message::StreamCommit {
            xid: 901,
            flags: 0,
            commit_lsn: 10,
            end_lsn: 20,
            commit_time: 30
        }
    );
    let abort = Writer::default().tag(b'A').u32(902).u32(903).0;
    assert_eq!(
        d.decode(&abort).unwrap(),
        Message::StreamAbort {
            xid: 902,
            subxid: 903
        }
    );
    let abort_v4 = Writer::default()
        .tag(b'A')
        .u32(902)
        .u32(902)
        .u64(1)
        .u64(2)
        .0;
    assert_eq!(
        d.decode(&abort_v4).unwrap(),
        Message::StreamAbort {
            xid: 902,
            subxid: 902
        }
    );
}

#[test]
fn malformed_input_is_a_typed_error() {
    let mut d = Decoder::new();
    assert_eq!(d.decode(&[]), Err(DecodeError::Empty));
    assert_eq!(d.decode(b"Z"), Err(DecodeError::UnknownTag('Z')));
    assert_eq!(d.decode(b"P"), Err(DecodeError::Unsupported('P')));
    assert!(matches!(
        d.decode(&[b'B', 0, 0]),
        Err(DecodeError::Truncated { tag: 'B', .. })
    ));
    let mut trailing = Writer::default().tag(b'B').u64(1).u64(2).u32(3).0;
    trailing.push(0);
    assert_eq!(
        d.decode(&trailing),
        Err(DecodeError::TrailingBytes { tag: 'B', extra: 1 })
    );
    let bad_kind = Writer::default()
        .tag(b'I')
        .u32(1)
        .u8(b'N')
        .u16(1)
        .u8(b'x')
        .0;
    assert!(matches!(
        d.decode(&bad_kind),
        Err(DecodeError::InvalidByte {
            what: "column kind",
            ..
        })
    ));
    let huge_len = Writer::default()
        .tag(b'I')
        .u32(1)
        .u8(b'N')
        .u16(1)
        .u8(b't')
        .i32(i32::MAX)
        .0;
    assert!(matches!(
        d.decode(&huge_len),
        Err(DecodeError::Truncated { .. })
    ));
    let negative_len = Writer::default()
        .tag(b'I')
        .u32(1)
        .u8(b'N')
        .u16(1)
        .u8(b't')
        .i32(-5)
        .0;
    assert!(d.decode(&negative_len).is_err());
    let unterminated = Writer::default()
        .tag(b'O')
        .u64(1)
        .0
        .into_iter()
        .chain(*b"abc")
        .collect::<Vec<_>>();
    assert!(matches!(
        d.decode(&unterminated),
        Err(DecodeError::InvalidString { .. })
    ));
    let many_columns = Writer::default().tag(b'I').u32(1).u8(b'N').u16(u16::MAX).0;
    assert!(matches!(
        d.decode(&many_columns),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error() {
    let update = Writer::default()
        .tag(b'U')
        .u32(16384)
        .u8(b'K')
        .u16(2)
        .text("1")
        .u8(b'n')
        .u8(b'N')
        .u16(2)
        .text("2")
        .u8(b'u')
        .0;
    for message in [relation(None), update] {
        for len in 0..message.len() {
            assert!(
                Decoder::new().decode(&message[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), in_stream in any::<bool>()) {
        let mut d = Decoder { in_stream };
        let _ = d.decode(&bytes);
    }

    #[test]
    fn arbitrary_bodies_of_known_tags_never_panic(tag in proptest::sample::select(b"BCORYIUDTMSEcA".to_vec()), body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut message = vec![tag];
        message.extend(body);
        let _ = Decoder::new().decode(&message);
    }
}
