/* JPEG decoding through the system libjpeg-turbo (libjpeg API), the decoder Pillow uses.
 *
 * We decode with libjpeg-turbo rather than a pure-Rust decoder because the ADM crop must
 * match Pillow's pixels: other decoders round the IDCT, chroma upsampling and YCbCr->RGB
 * differently (up to 3-5 levels). Settings are libjpeg's defaults, as in Pillow: ISLOW
 * IDCT, fancy upsampling. Errors longjmp back here and come out as a message; warnings
 * are ignored (as Pillow does) except premature end of data, which Pillow reports as a
 * truncated image. */

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

struct shim_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
    char message[JMSG_LENGTH_MAX];
};

static void shim_error_exit(j_common_ptr cinfo) {
    struct shim_error *e = (struct shim_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void shim_emit_message(j_common_ptr cinfo, int level) {
    struct shim_error *e = (struct shim_error *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        e->truncated = 1;
    }
}

static void shim_setup(struct jpeg_decompress_struct *cinfo, struct shim_error *err) {
    memset(err, 0, sizeof(*err));
    cinfo->err = jpeg_std_error(&err->pub);
    err->pub.error_exit = shim_error_exit;
    err->pub.emit_message = shim_emit_message;
}

/* Reads the header into `info` (width, height, components, jpeg colour space) and, when
 * `out` is not NULL, decodes into it (width * height * components of `out_space`).
 * Returns 0, 1 with a message in `msg` on error, 2 when the data ended early. */
int maetok_jpeg(const unsigned char *data, unsigned long len, int info[4], int out_space, unsigned char *out,
                unsigned long out_len, char *msg, int msg_len) {
    struct jpeg_decompress_struct cinfo;
    struct shim_error err;
    shim_setup(&cinfo, &err);
    if (setjmp(err.jump)) {
        snprintf(msg, (size_t)msg_len, "%s", err.message);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, len);
    jpeg_read_header(&cinfo, TRUE);
    info[0] = (int)cinfo.image_width;
    info[1] = (int)cinfo.image_height;
    info[2] = cinfo.num_components;
    info[3] = (int)cinfo.jpeg_color_space;
    if (out == NULL) {
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }
    cinfo.out_color_space = (J_COLOR_SPACE)out_space;
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    unsigned long stride = (unsigned long)cinfo.output_width * (unsigned long)cinfo.output_components;
    if (stride * cinfo.output_height > out_len) {
        snprintf(msg, (size_t)msg_len, "output buffer too small");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (unsigned long)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    int truncated = err.truncated;
    jpeg_destroy_decompress(&cinfo);
    if (truncated) {
        snprintf(msg, (size_t)msg_len, "premature end of JPEG data");
        return 2;
    }
    return 0;
}
