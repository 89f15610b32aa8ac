-- Watched folders: a video registered for an object that landed in a watched prefix keeps its
-- bytes where they landed. `source_key` is that object's key (NULL for an upload, whose key is
-- `{owner}/{id}/{file_name}`); one video per object, so a repeated event finds it taken.
ALTER TABLE videos ADD COLUMN source_key TEXT;
CREATE UNIQUE INDEX videos_source_key ON videos (source_key) WHERE source_key IS NOT NULL;
