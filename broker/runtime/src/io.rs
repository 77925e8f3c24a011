//! The storage layer's I/O traits on glommio: DMA files (O_DIRECT) driven by
//! the shard's io_uring.

use std::io;
use std::path::Path;

use bytes::Bytes;
use corelog_storage::io::{DirectFile, StorageIo};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

/// [`StorageIo`] for code running on a glommio executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlommioIo;

/// A glommio DMA file.
pub struct GlommioFile {
    file: DmaFile,
}

impl DirectFile for GlommioFile {
    type Buffer = DmaBuffer;

    fn alloc_buffer(&self, len: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(len)
    }

    async fn write_at(&self, buf: DmaBuffer, pos: u64) -> io::Result<()> {
        let len = buf.len();
        let written = self.file.write_at(buf, pos).await?;
        if written != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {written} of {len} bytes"),
            ));
        }
        Ok(())
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let read = self.file.read_at_aligned(pos, len).await?;
        // glommio's read buffers belong to the executor that made them and are
        // not Send, while fetch responses may travel to another shard. This
        // is the one copy on the cold read path.
        Ok(Bytes::copy_from_slice(&read))
    }

    async fn fdatasync(&self) -> io::Result<()> {
        Ok(self.file.fdatasync().await?)
    }

    async fn preallocate(&self, len_bytes: u64) -> io::Result<()> {
        match self.file.pre_allocate(len_bytes, false).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e: io::Error = e.into();
                if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                    return Ok(());
                }
                Err(e)
            }
        }
    }

    async fn truncate(&self, len_bytes: u64) -> io::Result<()> {
        Ok(self.file.truncate(len_bytes).await?)
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.file.file_size().await?)
    }
}

impl StorageIo for GlommioIo {
    type File = GlommioFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<GlommioFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await?;
        Ok(GlommioFile { file })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        // Directory creation happens when a partition is created, not on the
        // data path; the blocking calls are brief.
        std::fs::create_dir_all(path)?;
        if let Some(parent) = path.parent() {
            glommio::io::Directory::open(parent).await?.sync().await?;
        }
        Ok(())
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        match glommio::io::remove(path).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e: io::Error = e.into();
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn read_small_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let file = match OpenOptions::new().read(true).buffered_open(path).await {
            Ok(f) => f,
            Err(e) => {
                let e: io::Error = e.into();
                if e.kind() == io::ErrorKind::NotFound {
                    return Ok(None);
                }
                return Err(e);
            }
        };
        let size = file.file_size().await? as usize;
        let data = file.read_at(0, size).await?;
        let out = data.to_vec();
        file.close().await?;
        Ok(Some(out))
    }

    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(&tmp)
            .await?;
        let written = file.write_at(data.to_vec(), 0).await?;
        if written != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write of a small file",
            ));
        }
        file.fdatasync().await?;
        file.close().await?;
        glommio::io::rename(&tmp, path).await?;
        let dir = path.parent().unwrap_or(Path::new("."));
        glommio::io::Directory::open(dir).await?.sync().await?;
        Ok(())
    }
}
