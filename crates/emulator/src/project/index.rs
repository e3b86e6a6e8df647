//! Finding a profile by email or userId: a hash table of 32-bit identifier hashes per
//! identifier, kept in step with each profile's identifiers.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::Project;
use super::profile::User;

/// Where to find a user by identifier. Non-unique identifiers (userId in email-based
/// projects, email in userId-based ones) may have several entries; lookups act on one of them.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// (32-bit hash of the identifier, user index): 8 bytes an entry, and growing the table
    /// never re-reads the users.
    table: HashTable<(u32, u32)>,
}

/// Widens a 32-bit identifier hash for the table (an odd multiplier spreads it to the high
/// bits, which the table uses for its tags).
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Project {
    pub(super) fn find(&self, by_email: bool, key: &str) -> Option<u32> {
        let index = if by_email {
            &self.by_email
        } else {
            &self.by_user_id
        };
        let h = self.hasher.hash_one(key) as u32;
        index
            .table
            .find(spread(h), |&(eh, i)| {
                eh == h && {
                    let u = &self.users[i as usize];
                    let v = if by_email { &u.email } else { &u.user_id };
                    v.as_deref() == Some(key)
                }
            })
            .map(|&(_, i)| i)
    }

    /// The 32-bit hash of a user's identifier and the index it belongs in, if it has one.
    fn slot(&mut self, by_email: bool, idx: u32) -> Option<(u32, &mut Index)> {
        let u = &self.users[idx as usize];
        let key = if by_email { &u.email } else { &u.user_id };
        let h = self.hasher.hash_one(&**key.as_ref()?) as u32;
        let index = if by_email {
            &mut self.by_email
        } else {
            &mut self.by_user_id
        };
        Some((h, index))
    }

    pub(super) fn unindex(&mut self, by_email: bool, idx: u32) {
        if let Some((h, index)) = self.slot(by_email, idx)
            && let Ok(entry) = index.table.find_entry(spread(h), |&(_, i)| i == idx)
        {
            entry.remove();
        }
    }

    fn index(&mut self, by_email: bool, idx: u32) {
        if let Some((h, index)) = self.slot(by_email, idx) {
            index
                .table
                .insert_unique(spread(h), (h, idx), |&(eh, _)| spread(eh));
        }
    }

    pub(super) fn set_email(&mut self, idx: u32, email: &str) {
        if self.users[idx as usize].email.as_deref() == Some(email) {
            return;
        }
        self.unindex(true, idx);
        self.users[idx as usize].email = Some(email.into());
        self.index(true, idx);
    }

    pub(super) fn set_user_id(&mut self, idx: u32, user_id: &str) {
        if self.users[idx as usize].user_id.as_deref() == Some(user_id) {
            return;
        }
        self.unindex(false, idx);
        self.users[idx as usize].user_id = Some(user_id.into());
        self.index(false, idx);
    }

    pub(super) fn create_user(&mut self, email: Option<&str>, user_id: Option<&str>) -> u32 {
        let idx = self.users.len() as u32;
        self.users.push(User {
            email: email.map(Into::into),
            user_id: user_id.map(Into::into),
            data: None,
        });
        self.live_users += 1;
        self.index(true, idx);
        self.index(false, idx);
        idx
    }
}
