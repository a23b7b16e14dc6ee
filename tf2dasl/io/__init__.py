"""File formats: safe .pth reading, the 3DDFA_V2 importer, model directories, images, meshes."""
