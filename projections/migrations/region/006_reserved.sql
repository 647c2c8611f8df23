-- Reserved for the per-organization hash tree (branch tree), which takes
-- migration 006. tern needs the numbers without gaps, so this stands in for
-- it until that branch is merged: the merge must delete this file (tern
-- refuses two migrations 006), and a database migrated with this file in
-- place must be rebuilt, since it would never run the real 006.
SELECT 1;
