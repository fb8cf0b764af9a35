//! Finding and checking records in the fed bytes: page headers, record headers, continuation
//! pages, CRC-32C, XLOG_SWITCH; where WAL ends and why.

use super::*;

macro_rules! step {
    ($e:expr) => {
        match $e {
            Step::Ok(v) => v,
            Step::NeedMore => return Ok(Step::NeedMore),
            Step::End(l, r) => return Ok(Step::End(l, r)),
        }
    };
}

impl WalDecoder {
    /// Reads and validates the header of the page at `page`.
    fn page_header(&mut self, page: u64) -> Result<Step<PageHeader>, WalError> {
        // Most records share their page with the one before: its header was validated then.
        if let Some((p, h)) = self.last_page {
            if p == page {
                return Ok(Step::Ok(h));
            }
        }
        let r = self.validate_page_header(page)?;
        if let Step::Ok(h) = &r {
            self.last_page = Some((page, *h));
        }
        Ok(r)
    }

    /// Reads and validates the header of the page at `page` (uncached).
    fn validate_page_header(&mut self, page: u64) -> Result<Step<PageHeader>, WalError> {
        let Some(raw) = self.slice(page, 24) else {
            return Ok(Step::NeedMore);
        };
        if raw.iter().all(|&b| b == 0) {
            return Ok(Step::End(page, EndReason::ZeroPage));
        }
        let long = raw
            .get(2)
            .is_some_and(|&b| u16::from(b) & XLP_LONG_HEADER != 0);
        let Some(hdr) = self
            .slice(page, if long { 40 } else { 24 })
            .and_then(PageHeader::parse)
        else {
            return Ok(Step::NeedMore);
        };
        let invalid = |what: String| Ok(Step::End(page, EndReason::InvalidPage { what }));
        match (PgVersion::from_magic(hdr.magic), self.version) {
            (None, None) => {
                return Err(WalError::UnknownMagic {
                    magic: hdr.magic,
                    lsn: Lsn(page),
                    file: self.file_at(page),
                })
            }
            (None, Some(_)) => return invalid(format!("invalid magic number {:04X}", hdr.magic)),
            (Some(v), Some(known)) if v != known => {
                return invalid(format!(
                    "page magic {:04X} (PostgreSQL {}) differs from earlier pages (PostgreSQL {})",
                    hdr.magic, v.0, known.0
                ))
            }
            (Some(v), _) => self.version = Some(v),
        }
        if hdr.info & !XLP_ALL_FLAGS != 0 {
            return invalid(format!("invalid info bits {:04X}", hdr.info));
        }
        if let Some(long) = hdr.long {
            let seg = u64::from(long.seg_size);
            if !valid_seg_size(seg) {
                return invalid(format!(
                    "invalid segment size {} in long page header",
                    long.seg_size
                ));
            }
            if long.blcksz as usize != XLOG_BLCKSZ {
                return invalid(format!(
                    "unsupported XLOG_BLCKSZ {} in long page header",
                    long.blcksz
                ));
            }
            if page % seg != 0 {
                return invalid("long page header on a page that does not start a segment".into());
            }
            match self.seg_size {
                Some(s) if s != seg => {
                    return invalid(format!("segment size {seg} differs from {s}"));
                }
                _ => self.seg_size = Some(seg),
            }
            match self.sysid {
                Some(s) if s != long.sysid => {
                    return Err(WalError::InvalidPageHeader {
                        what: format!(
                            "WAL file is from a different database system: system identifier {}, expected {}",
                            long.sysid, s
                        ),
                        lsn: Lsn(page),
                        file: self.file_at(page),
                    })
                }
                _ => self.sysid = Some(long.sysid),
            }
        } else if self.seg_size.is_some_and(|s| page % s == 0) {
            if hdr.pageaddr.0 != page {
                return Ok(Step::End(
                    page,
                    EndReason::RecycledPage {
                        pageaddr: hdr.pageaddr,
                    },
                ));
            }
            return invalid("segment's first page has no long header".into());
        }
        if hdr.pageaddr.0 != page {
            return Ok(Step::End(
                page,
                EndReason::RecycledPage {
                    pageaddr: hdr.pageaddr,
                },
            ));
        }
        if let Some(t) = self.latest_tli {
            if hdr.tli < t {
                return invalid(format!(
                    "out-of-sequence timeline ID {} (after {})",
                    hdr.tli, t
                ));
            }
        }
        self.latest_tli = Some(hdr.tli);
        Ok(Step::Ok(hdr))
    }

    /// Positions `next` on the first record at or after the page of `start`.
    pub(super) fn find_first(&mut self) -> Result<Step<()>, WalError> {
        let start_page = self.start.0 - self.start.0 % BLCKSZ;
        if self.next != self.start.0 {
            // Re-entered after NeedMore: `next` holds the page being examined.
        } else {
            self.next = start_page;
        }
        loop {
            let page = self.next - self.next % BLCKSZ;
            let hdr = match self.page_header(page)? {
                Step::Ok(h) => h,
                Step::NeedMore => return Ok(Step::NeedMore),
                Step::End(l, r) => return Ok(Step::End(l, r)),
            };
            let hlen = hdr.header_len() as u64;
            let off = self.start.0 % BLCKSZ;
            if page == start_page && off != 0 && off < hlen {
                return Err(WalError::InvalidStart {
                    what: format!("inside a page header (offset {off})"),
                    lsn: self.start,
                    file: self.file_at(page),
                });
            }
            if hdr.is_contrecord() {
                let rem = (u64::from(hdr.rem_len) + 7) & !7;
                if rem >= BLCKSZ - hlen {
                    self.next = page + BLCKSZ;
                    continue;
                }
                self.next = page + hlen + rem;
            } else {
                self.next = page + hlen;
            }
            break;
        }
        self.state = State::Skipping;
        Ok(Step::Ok(()))
    }

    /// Reads the record at `next`.
    pub(super) fn read_record(&mut self) -> Result<Step<Frame>, WalError> {
        let mut lsn = self.next;
        let page = lsn - lsn % BLCKSZ;
        let hdr = step!(self.page_header(page)?);
        if lsn == page {
            lsn += hdr.header_len() as u64;
        } else if lsn - page < hdr.header_len() as u64 {
            return Err(WalError::InvalidRecord {
                what: "record position inside a page header".into(),
                lsn: Lsn(lsn),
                file: self.file_at(lsn),
            });
        }
        self.next = lsn;
        if let Some(end) = self.end {
            if lsn >= end.0 {
                return Ok(Step::End(lsn, EndReason::RequestedEnd));
            }
        }
        let Some(len_bytes) = self.slice(lsn, 4) else {
            return Ok(Step::NeedMore);
        };
        let tot_len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if tot_len == 0 {
            return Ok(Step::End(lsn, EndReason::ZeroLength));
        }
        if (tot_len as usize) < RECORD_HEADER_LEN || tot_len > MAX_RECORD_LEN {
            return Ok(Step::End(lsn, EndReason::InvalidLength { tot_len }));
        }
        // Page headers only add bytes: wait until at least tot_len bytes are there.
        if self.buf.end() < lsn.saturating_add(u64::from(tot_len)) {
            // Validate the header early when it lies on this page (a header that crosses into
            // the next page is checked once the whole record is there).
            if lsn % BLCKSZ + RECORD_HEADER_LEN as u64 <= BLCKSZ
                && self.slice(lsn, RECORD_HEADER_LEN).is_some()
            {
                if let Some(r) = self.check_header(lsn, &[(lsn, RECORD_HEADER_LEN)])? {
                    return Ok(Step::End(lsn, r));
                }
            }
            return Ok(Step::NeedMore);
        }
        // Fast path: the record lies on one page.
        if lsn % BLCKSZ + u64::from(tot_len) <= BLCKSZ {
            if let Some(r) = self.check_header(lsn, &[(lsn, RECORD_HEADER_LEN)])? {
                return Ok(Step::End(lsn, r));
            }
            let end_lsn = lsn + u64::from(tot_len);
            return self.finish_record(lsn, end_lsn, &[(lsn, tot_len as usize)]);
        }
        // Walk the pages the record spans: validate continuation headers, check availability.
        let mut pieces: smallvec::SmallVec<[(u64, usize); 4]> = smallvec::SmallVec::new();
        let mut remaining = tot_len as u64;
        let mut pos = lsn;
        let mut header_checked = false;
        loop {
            let page_end = pos - pos % BLCKSZ + BLCKSZ;
            let take = remaining.min(page_end - pos);
            if self.slice(pos, take as usize).is_none() {
                return Ok(Step::NeedMore);
            }
            pieces.push((pos, take as usize));
            remaining -= take;
            if !header_checked && (tot_len as u64 - remaining) >= RECORD_HEADER_LEN as u64 {
                header_checked = true;
                if let Some(r) = self.check_header(lsn, &pieces)? {
                    return Ok(Step::End(lsn, r));
                }
            }
            if remaining == 0 {
                break;
            }
            let h = match self.page_header(page_end)? {
                Step::Ok(h) => h,
                Step::NeedMore => return Ok(Step::NeedMore),
                Step::End(l, r) => return Ok(Step::End(if l == page_end { lsn } else { l }, r)),
            };
            if !h.is_contrecord() {
                return Ok(Step::End(
                    lsn,
                    EndReason::InvalidPage {
                        what: format!("there is no contrecord flag at {}", Lsn(page_end)),
                    },
                ));
            }
            if u64::from(h.rem_len) != remaining {
                return Ok(Step::End(
                    lsn,
                    EndReason::InvalidPage {
                        what: format!(
                            "invalid contrecord length {} (expected {remaining}) at {}",
                            h.rem_len,
                            Lsn(page_end)
                        ),
                    },
                ));
            }
            pos = page_end + h.header_len() as u64;
        }
        let end_lsn = pieces.last().map_or(lsn, |&(p, n)| p + n as u64);
        self.finish_record(lsn, end_lsn, &pieces)
    }

    /// CRC-checks a record whose bytes are `pieces`, and advances past it.
    fn finish_record(
        &mut self,
        lsn: u64,
        end_lsn: u64,
        pieces: &[(u64, usize)],
    ) -> Result<Step<Frame>, WalError> {
        if let Some(end) = self.end {
            if end_lsn > end.0 {
                return Ok(Step::End(lsn, EndReason::RequestedEnd));
            }
        }
        let (computed, head) = if self.defer_crc {
            (0, self.gather_header(pieces))
        } else {
            record_crc_pieces(
                pieces
                    .iter()
                    .map(|&(p, n)| self.slice(p, n).unwrap_or_default()),
            )
        };
        let Some(rh) = RecordHeader::parse(&head) else {
            return Ok(Step::End(lsn, EndReason::InvalidLength { tot_len: 0 }));
        };
        if !self.defer_crc && rh.crc != computed {
            return Ok(Step::End(
                lsn,
                EndReason::BadCrc {
                    stored: rh.crc,
                    computed,
                },
            ));
        }
        let version = self.version.unwrap_or(PgVersion(0));
        // Advance.
        let mut next = Lsn(end_lsn).align8().0;
        if rh.rmid == 0 && rh.info & 0xF0 == 0x40 {
            let Some(seg) = self.seg_size else {
                return Err(WalError::InvalidRecord {
                    what: "XLOG_SWITCH while the segment size is unknown (start on a segment's first page or declare it)".into(),
                    lsn: Lsn(lsn),
                    file: self.file_at(lsn),
                });
            };
            next = end_lsn.div_ceil(seg).saturating_mul(seg);
        }
        self.prev = Some(lsn);
        self.next = next;
        Ok(Step::Ok(Frame {
            lsn: Lsn(lsn),
            end_lsn: Lsn(end_lsn),
            prev: Lsn(rh.prev),
            version,
            crc_checked: !self.defer_crc,
            pieces: pieces.iter().map(|&(p, n)| (p, n as u32)).collect(),
        }))
    }

    /// The record header gathered from the first pieces of a record (zeros where not fed).
    fn gather_header(&self, pieces: &[(u64, usize)]) -> [u8; RECORD_HEADER_LEN] {
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        let mut got = 0;
        for &(p, n) in pieces {
            let take = n.min(RECORD_HEADER_LEN - got);
            if let Some(s) = self.slice(p, take) {
                hdr[got..got + take].copy_from_slice(s);
            }
            got += take;
            if got == RECORD_HEADER_LEN {
                break;
            }
        }
        hdr
    }

    /// Validates the record header once its 24 bytes are available; `Some` = end of WAL.
    fn check_header(
        &self,
        lsn: u64,
        pieces: &[(u64, usize)],
    ) -> Result<Option<EndReason>, WalError> {
        let hdr = self.gather_header(pieces);
        let Some(h) = RecordHeader::parse(&hdr) else {
            return Ok(Some(EndReason::InvalidLength { tot_len: 0 }));
        };
        let builtin_max = 21u8;
        let custom = self.version.is_some_and(|v| v.0 >= 15) && h.rmid >= 128;
        if h.rmid > builtin_max && !custom {
            return Ok(Some(EndReason::InvalidRmgr { rmid: h.rmid }));
        }
        if let Some(prev) = self.prev {
            if h.prev != prev {
                return Ok(Some(EndReason::BadPrev {
                    found: Lsn(h.prev),
                    expected: Lsn(prev),
                }));
            }
        } else if h.prev >= lsn {
            return Ok(Some(EndReason::BadPrev {
                found: Lsn(h.prev),
                expected: Lsn(lsn),
            }));
        }
        Ok(None)
    }
}
